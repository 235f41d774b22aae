"""``DeviceAuthMiddleware``: an ASGI middleware a relying backend puts in front of its API.

A device asks ``POST {prefix}/challenge`` ``{"serial": ...}`` for a nonce, signs a device-auth
token on chip (``aud`` = this service's audience) and sends it on each request as
``Authorization: DeviceToken <base64url token>`` with its chain as
``X-Device-Chain: <base64 DER>,<base64 DER>``. The first request consumes the nonce; the same
token then serves until its ``exp`` (five minutes at most). Every request checks the token
offline against the factory root and asks the status source, so a revoked unit is refused at
once. The authenticated serial is left in ``scope["state"]["device_serial"]``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from cryptography import x509
from starlette.types import ASGIApp, Receive, Scope, Send

from birthright.ca.verify import parse_chain, verify_device_chain
from birthright.deviceauth.checks import DeviceAuthRefused, DeviceRevoked, check_offline
from birthright.deviceauth.token import parse_token
from birthright.errors import BirthrightError, TransientError
from birthright.relying.status import MemoryNonces, StatusSource

log = logging.getLogger(__name__)
MAX_HEADER = 12_000


class DeviceAuthMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        roots: Sequence[x509.Certificate],
        audience: str,
        status: StatusSource,
        clock: Callable[[], datetime],
        nonces: MemoryNonces | None = None,
        prefix: str = "/device-auth",
    ) -> None:
        self.app = app
        self._roots = list(roots)
        self._audience = audience
        self._status = status
        self._clock = clock
        self._nonces = nonces or MemoryNonces()
        self._prefix = prefix
        #: token digest -> (serial, exp): tokens whose nonce is spent, usable until exp.
        self._sessions: dict[bytes, tuple[str, datetime]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == f"{self._prefix}/challenge" and scope["method"] == "POST":
            await self._challenge(scope, receive, send)
            return
        try:
            serial = await self._authenticate(scope)
        except BirthrightError as e:
            log.info("device refused path=%s code=%s", scope["path"], e.code)
            await _json(send, e.http_status, {"code": e.code, "message": e.message})
            return
        scope.setdefault("state", {})["device_serial"] = serial
        await self.app(scope, receive, send)

    async def _challenge(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > 1024:
                await _json(send, 413, {"code": "body_too_large", "message": "1 KiB at most"})
                return
            if not message.get("more_body"):
                break
        try:
            serial = json.loads(body)["serial"]
            if not isinstance(serial, str) or not 1 <= len(serial) <= 64:
                raise ValueError(serial)
        except (ValueError, KeyError, TypeError):
            await _json(send, 400, {"code": "bad_request", "message": 'send {"serial": ...}'})
            return
        nonce, expires = self._nonces.issue(serial, self._clock())
        answer = {"nonce": nonce, "audience": self._audience, "expires_at": expires.isoformat()}
        await _json(send, 201, answer)

    async def _authenticate(self, scope: Scope) -> str:
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization", b"")
        scheme, _, token_b64 = auth.partition(b" ")
        chain_header = headers.get(b"x-device-chain", b"")
        if scheme.lower() != b"devicetoken" or not token_b64 or not chain_header:
            raise DeviceAuthRefused(
                "send a DeviceToken and X-Device-Chain", code="device_auth_missing"
            )
        if len(token_b64) + len(chain_header) > MAX_HEADER:
            raise DeviceAuthRefused("the credentials are too large", code="device_auth_malformed")
        try:
            token = base64.urlsafe_b64decode(token_b64 + b"=" * (-len(token_b64) % 4))
            chain = [base64.b64decode(c, validate=True) for c in chain_header.split(b",")]
        except (binascii.Error, ValueError) as e:
            raise DeviceAuthRefused("bad base64", code="device_auth_malformed") from e
        now = self._clock()
        parsed = parse_token(token)
        check_offline(
            parsed,
            parse_chain(chain),
            audience=self._audience,
            verify_chain=self._verify_chain,
            now=now,
        )
        serial = parsed.claims.serial
        status = await self._status.status(serial)
        if status == "indeterminate":
            raise TransientError(
                "the device's status cannot be checked now", code="device_status_unavailable"
            )
        if status == "unknown":
            raise DeviceAuthRefused("no enrolled device has this serial", code="device_unknown")
        if status != "active":
            raise DeviceRevoked(f"the device is {status}")
        self._spend(
            hashlib.sha256(token).digest(),
            serial,
            parsed.claims.nonce,
            parsed.claims.expires_at,
            now,
        )
        return serial

    def _spend(self, digest: bytes, serial: str, nonce: str, exp: datetime, now: datetime) -> None:
        if digest in self._sessions:
            return  # the nonce was spent by this very token's first use
        outcome = self._nonces.consume(nonce, serial, now)
        if outcome == "expired":
            raise DeviceAuthRefused("the nonce has expired", code="device_auth_expired")
        if outcome != "valid":
            raise DeviceAuthRefused("the nonce is unknown or spent", code="device_auth_replayed")
        self._sessions = {d: v for d, v in self._sessions.items() if v[1] > now}
        self._sessions[digest] = (serial, exp)

    def _verify_chain(
        self, leaf: x509.Certificate, intermediates: Sequence[x509.Certificate], now: datetime
    ) -> None:
        verify_device_chain(leaf, intermediates, roots=self._roots, now=now)


async def _json(send: Send, status: int, body: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
