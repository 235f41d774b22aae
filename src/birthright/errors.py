"""One error tree, split by whose fault a failure is.

Every error carries a stable ``code`` (the API returns it verbatim) and a human message.
``http_status`` is only a hint for the HTTP edge; the domain never imports FastAPI.
"""

from __future__ import annotations

from typing import Any, ClassVar


class BirthrightError(Exception):
    """Root of every error the project raises on purpose."""

    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, code: str | None = None, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]
        self.detail = detail

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail:
            body["detail"] = self.detail
        return body


class InputError(BirthrightError):
    """The caller sent something wrong; retrying the same request will fail the same way."""

    code = "bad_request"
    http_status = 400


class NotFoundError(InputError):
    code = "not_found"
    http_status = 404


class ConflictError(InputError):
    """The request contradicts what is already recorded (duplicate serial, chip id, key)."""

    code = "conflict"
    http_status = 409


class TrustError(BirthrightError):
    """A signature, chain, nonce or status check failed."""

    code = "untrusted"
    http_status = 403


class TransientError(BirthrightError):
    """A dependency (database, device, backend) is unavailable; retrying may succeed."""

    code = "unavailable"
    http_status = 503


class RateLimitedError(TransientError):
    """The caller is over its rate limit; retry after ``retry_after`` seconds."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class ConfigError(BirthrightError):
    """The deployment is misconfigured; an operator must act."""

    code = "config_error"
    http_status = 500


class DeviceError(BirthrightError):
    """A secure element refused or failed an operation."""

    code = "secure_element_error"
    http_status = 500
