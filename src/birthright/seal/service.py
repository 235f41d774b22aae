"""Seal a payload to one enrolled, live device; record its key-agreement key (ADR 0010).

Pure of I/O: the store is a port, the clock is passed in. A refusal writes only its audit
record. Audit records name the serial, purpose and size, never the payload.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)

from birthright.audit.events import AuditEvent
from birthright.enrollment.model import DeviceRecord
from birthright.errors import BirthrightError, ConflictError, InputError, NotFoundError, TrustError
from birthright.seal.envelope import Envelope, check_purpose, seal

KA_STATEMENT = b"birthright-key-agreement-key-v1\x00"


def ka_statement(serial: str, public_key: ec.EllipticCurvePublicKey) -> bytes:
    """What a device's identity key signs to vouch for its key-agreement key."""
    spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return KA_STATEMENT + serial.encode() + b"\x00" + spki


class SealStore(Protocol):
    def device(self, serial: str) -> DeviceRecord | None: ...

    def ka_key(self, serial: str) -> bytes | None: ...

    def put_ka_key(self, serial: str, spki_der: bytes, event: AuditEvent, now: datetime) -> None:
        """Record the key and its audit event in one transaction."""

    def audit(self, event: AuditEvent, now: datetime) -> None: ...


class SealService:
    def __init__(self, *, store: SealStore, clock: Callable[[], datetime]) -> None:
        self._store, self._clock = store, clock

    def seal(self, serial: str, purpose: str, plaintext: bytes) -> tuple[Envelope, str]:
        """The envelope, and which device key it is sealed to (identity | key-agreement)."""
        try:
            check_purpose(purpose)
            device = self._live(serial)
            key, which = self._key_of(device)
            envelope = seal(key, plaintext, serial=serial, purpose=purpose)
        except BirthrightError as e:
            self._refused("seal.created", serial, e, purpose=purpose)
            raise
        detail = {"purpose": purpose, "bytes": len(plaintext), "key": which}
        self._store.audit(
            AuditEvent("seal.created", "ok", serial=serial, detail=detail), self._clock()
        )
        return envelope, which

    def register_ka_key(self, serial: str, spki_der: bytes, signature: bytes) -> None:
        """Record a device's key-agreement key, vouched for by its identity key."""
        try:
            device = self._live(serial)
            public_key = _p256(spki_der)
            identity = device.certificate.public_key()
            assert isinstance(identity, ec.EllipticCurvePublicKey)
            try:
                identity.verify(
                    signature, ka_statement(serial, public_key), ec.ECDSA(hashes.SHA256())
                )
            except InvalidSignature:
                raise TrustError(
                    "the key-agreement key is not signed by the device's identity key",
                    code="ka_key_signature",
                ) from None
        except BirthrightError as e:
            self._refused("seal.ka_key_registered", serial, e)
            raise
        event = AuditEvent("seal.ka_key_registered", "ok", serial=serial)
        self._store.put_ka_key(serial, spki_der, event, self._clock())

    def _live(self, serial: str) -> DeviceRecord:
        device = self._store.device(serial)
        if device is None:
            raise NotFoundError(f"no enrolled device has serial {serial!r}", code="device_unknown")
        if device.status != "active":
            raise TrustError(
                f"device {serial} is {device.status}: nothing is sealed to it",
                code="device_revoked",
            )
        return device

    def _key_of(self, device: DeviceRecord) -> tuple[ec.EllipticCurvePublicKey, str]:
        recorded = self._store.ka_key(device.serial)
        if recorded is not None:
            return _p256(recorded), "key-agreement"
        if device.se_proof == "tpm":
            raise ConflictError(
                f"device {device.serial} is a TPM and has not registered its key-agreement key",
                code="no_key_agreement_key",
            )
        key = device.certificate.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return key, "identity"

    def _refused(self, name: str, serial: str, e: BirthrightError, **detail: str) -> None:
        event = AuditEvent(name, "refused", code=e.code, serial=serial[:64], detail=detail)
        self._store.audit(event, self._clock())


def _p256(spki_der: bytes) -> ec.EllipticCurvePublicKey:
    try:
        key = load_der_public_key(spki_der)
    except ValueError as e:
        raise InputError("not a DER SubjectPublicKeyInfo", code="bad_public_key") from e
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InputError("a key-agreement key must be P-256", code="bad_public_key")
    return key
