"""Issue a short-lived operational certificate for a fresh proof with the factory identity.

The proof is a PKCS#10 request signed on chip by the device's factory identity key, naming
the device's serial and carrying, as its challengePassword, a single-use nonce the backend
issued for that serial (``POST /v1/attestations/challenges``). The request's key must be the
enrolled identity key, and the device must be live: a revoked or held device gets nothing,
so revocation also works passively as its operational certificate runs out (ADR 0011).
A refusal writes only its audit record; the nonce is spent only by a successful request.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from cryptography import x509
from cryptography.x509.oid import AttributeOID, NameOID

from birthright.audit.events import AuditEvent
from birthright.ca.csr import parse_csr
from birthright.ca.operational import DEFAULT_LIFETIME, OperationalCa
from birthright.enrollment.model import DeviceRecord
from birthright.errors import BirthrightError, InputError, NotFoundError, TrustError
from birthright.types import DEVICE_AUTH_NONCE_PREFIX


class Devices(Protocol):
    def device(self, serial: str) -> DeviceRecord | None: ...

    def audit(self, event: AuditEvent, now: datetime) -> None: ...


class Nonces(Protocol):
    def consume(self, nonce: str, serial: str, now: datetime) -> str: ...


class OperationalCertService:
    def __init__(
        self,
        *,
        ca: OperationalCa,
        devices: Devices,
        nonces: Nonces,
        clock: Callable[[], datetime],
        lifetime: timedelta = DEFAULT_LIFETIME,
    ) -> None:
        self._ca, self._devices, self._nonces = ca, devices, nonces
        self._clock, self._lifetime = clock, lifetime

    @property
    def ca_cert(self) -> x509.Certificate:
        return self._ca.cert

    def issue(self, csr_data: bytes) -> x509.Certificate:
        now = self._clock()
        serial = ""
        try:
            parsed = parse_csr(csr_data)
            serial = _one(parsed.csr.subject, "serialNumber")
            nonce = _challenge(parsed.csr)
            device = self._devices.device(serial)
            if device is None:
                raise NotFoundError(
                    f"no enrolled device has serial {serial!r}", code="device_unknown"
                )
            if device.status != "active":
                raise TrustError(
                    f"device {serial} is {device.status}: no operational certificate",
                    code="device_revoked",
                )
            if parsed.public_key_der != device.public_key_der:
                raise TrustError(
                    "the request is not signed by the device's factory identity key",
                    code="key_mismatch",
                )
            if nonce.startswith(DEVICE_AUTH_NONCE_PREFIX):
                raise TrustError(
                    "the challenge nonce was issued for device authentication",
                    code="nonce_wrong_purpose",
                )
            outcome = self._nonces.consume(nonce, serial, now)
            if outcome != "valid":
                raise TrustError(f"the challenge nonce is {outcome}", code=f"nonce_{outcome}")
        except BirthrightError as e:
            event = AuditEvent("opcert.issued", "refused", code=e.code, serial=serial[:64] or None)
            self._devices.audit(event, now)
            raise
        cert = self._ca.issue(parsed.public_key, serial=serial, now=now, lifetime=self._lifetime)
        detail = {
            "cert_serial": format(cert.serial_number, "x"),
            "not_after": str(cert.not_valid_after_utc),
        }
        self._devices.audit(AuditEvent("opcert.issued", "ok", serial=serial, detail=detail), now)
        return cert


def _one(name: x509.Name, what: str) -> str:
    values = name.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if len(values) != 1 or not isinstance(values[0].value, str) or not values[0].value:
        raise InputError(f"the request must name exactly one {what}", code="csr_subject")
    return values[0].value


def _challenge(csr: x509.CertificateSigningRequest) -> str:
    try:
        value = csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD).value
    except x509.AttributeNotFound:
        raise InputError(
            "the request carries no challenge nonce (challengePassword)", code="csr_no_challenge"
        ) from None
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    if not 1 <= len(text) <= 128:
        raise InputError("the challenge nonce is malformed", code="csr_no_challenge")
    return text
