"""Device authentication at our service: the offline checks plus status, nonce and audit."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from birthright.attest.service import NonceStore
from birthright.audit.events import AuditEvent
from birthright.ca.verify import parse_chain
from birthright.deviceauth.checks import (
    ChainVerifier,
    DeviceAuthRefused,
    DeviceRevoked,
    check_offline,
)
from birthright.deviceauth.token import parse_token
from birthright.enrollment.model import DeviceRecord
from birthright.errors import InputError, NotFoundError
from birthright.types import DEVICE_AUTH_NONCE_PREFIX, Nonce, ProductSerial

NONCE_PREFIX = DEVICE_AUTH_NONCE_PREFIX


class DeviceDirectory(Protocol):
    def device(self, serial: str) -> DeviceRecord | None: ...


class AuditSink(Protocol):
    def record(self, event: AuditEvent, now: datetime) -> None: ...


@dataclass(frozen=True)
class DeviceChallenge:
    nonce: Nonce
    serial: ProductSerial
    expires_at: datetime


@dataclass(frozen=True)
class DeviceSession:
    """The verdict: this unit proved itself; trust it until ``expires_at`` (the token's exp)."""

    serial: ProductSerial
    product: str
    audience: str
    authenticated_at: datetime
    expires_at: datetime


class DeviceAuthService:
    def __init__(
        self,
        *,
        nonces: NonceStore,
        devices: DeviceDirectory,
        audit: AuditSink,
        verify_chain: ChainVerifier,
        audience: str,
        clock: Callable[[], datetime],
        nonce_ttl: timedelta,
    ) -> None:
        self._nonces = nonces
        self._devices = devices
        self._audit = audit
        self._verify_chain = verify_chain
        self._audience = audience
        self._clock = clock
        self._ttl = nonce_ttl

    @property
    def audience(self) -> str:
        return self._audience

    def challenge(self, serial: str) -> DeviceChallenge:
        if self._devices.device(serial) is None:
            raise NotFoundError(f"no enrolled device has serial {serial!r}", code="device_unknown")
        now = self._clock()
        nonce = Nonce(NONCE_PREFIX + secrets.token_urlsafe(32))
        self._nonces.issue(nonce, ProductSerial(serial), now, now + self._ttl)
        return DeviceChallenge(nonce, ProductSerial(serial), now + self._ttl)

    def authenticate(self, *, token: bytes, chain: Sequence[bytes]) -> DeviceSession:
        """A session, or ``DeviceAuthRefused`` / ``InputError`` after auditing the refusal."""
        now = self._clock()
        serial: str | None = None
        try:
            parsed = parse_token(token)
            serial = parsed.claims.serial
            certs = parse_chain(chain)
            check_offline(
                parsed, certs, audience=self._audience, verify_chain=self._verify_chain, now=now
            )
            device = self._check_device(serial, certs[0])
            self._consume(parsed.claims.nonce, serial, now)
        except (DeviceAuthRefused, InputError) as e:
            self._audit.record(
                AuditEvent(event="device.auth", outcome="refused", code=e.code, serial=serial),
                now,
            )
            raise
        self._audit.record(AuditEvent(event="device.auth", outcome="ok", serial=serial), now)
        return DeviceSession(
            serial=device.serial,
            product=device.product,
            audience=self._audience,
            authenticated_at=now,
            expires_at=parsed.claims.expires_at,
        )

    def _check_device(self, serial: str, leaf: x509.Certificate) -> DeviceRecord:
        device = self._devices.device(serial)
        if device is None:
            raise DeviceAuthRefused("no enrolled device has this serial", code="device_unknown")
        if leaf.public_bytes(Encoding.DER) != device.cert_der:
            raise DeviceAuthRefused("not this unit's certificate", code="device_untrusted")
        if device.status != "active":
            raise DeviceRevoked(f"the device is {device.status}")
        return device

    def _consume(self, nonce: str, serial: str, now: datetime) -> None:
        """Last, once everything else passed: a refused token never burns a nonce."""
        if not nonce.startswith(NONCE_PREFIX):
            raise DeviceAuthRefused("not a device-auth nonce", code="device_auth_nonce_unknown")
        outcome = self._nonces.consume(nonce, serial, now)
        if outcome == "valid":
            return
        code = {
            "expired": "device_auth_expired",
            "replayed": "device_auth_replayed",
        }.get(outcome, "device_auth_nonce_unknown")
        raise DeviceAuthRefused(f"the nonce is {outcome.replace('_', ' ')}", code=code)
