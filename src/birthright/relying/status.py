"""The relying service's two small stores: its own single-use nonces, and a status source."""

from __future__ import annotations

import secrets
import threading
from datetime import datetime, timedelta
from typing import Literal, Protocol

import httpx

Status = Literal["active", "revoked", "unknown", "indeterminate"]


class StatusSource(Protocol):
    async def status(self, serial: str) -> Status:
        """The unit's current status; ``indeterminate`` when it cannot be learnt now."""
        ...


class HttpStatusSource:
    """Asks the identity service's ``GET /v1/devices/{serial}/status`` on every request, so a
    revocation is refused at once; a timeout or an error is indeterminate, never active."""

    def __init__(self, base_url: str, *, timeout: float = 2.0, **httpx_args: object) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            **httpx_args,  # type: ignore[arg-type]
        )

    async def status(self, serial: str) -> Status:
        try:
            r = await self._client.get(f"/v1/devices/{serial}/status")
        except httpx.HTTPError:
            return "indeterminate"
        if r.status_code == 404:
            return "unknown"
        if r.status_code != 200:
            return "indeterminate"
        status = r.json().get("status")
        return "active" if status == "active" else "revoked"

    async def aclose(self) -> None:
        await self._client.aclose()


class MemoryNonces:
    """Single-use, short-lived nonces of one relying-service process (bounded)."""

    def __init__(self, *, ttl: timedelta = timedelta(seconds=60), limit: int = 100_000) -> None:
        self._ttl = ttl
        self._limit = limit
        self._open: dict[str, tuple[str, datetime]] = {}
        self._lock = threading.Lock()

    def issue(self, serial: str, now: datetime) -> tuple[str, datetime]:
        nonce = "ra." + secrets.token_urlsafe(32)
        with self._lock:
            if len(self._open) >= self._limit:
                self._open = {n: v for n, v in self._open.items() if v[1] > now}
                if len(self._open) >= self._limit:
                    self._open.pop(next(iter(self._open)))
            self._open[nonce] = (serial, now + self._ttl)
        return nonce, now + self._ttl

    def consume(self, nonce: str, serial: str, now: datetime) -> str:
        """``valid``, ``expired`` or ``unknown`` (never issued, already used, other device)."""
        with self._lock:
            entry = self._open.get(nonce)
            if entry is None or entry[0] != serial:
                return "unknown"
            del self._open[nonce]
        return "valid" if entry[1] > now else "expired"
