"""Challenge and verify: a device proves, with its chip key, that it is the unit it claims."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from birthright.attest.eat import parse_eat
from birthright.attest.evidence import EvidenceMalformed, parse_evidence
from birthright.attest.firmware import FirmwareAllowList, FirmwareRelease, release_findings
from birthright.attest.quote import quote_findings
from birthright.attest.verdict import AttestationResult, Finding
from birthright.ca.verify import parse_chain
from birthright.enrollment.model import DeviceRecord
from birthright.errors import NotFoundError, TrustError
from birthright.types import DEVICE_AUTH_NONCE_PREFIX, Nonce, ProductSerial

NonceOutcome = Literal["valid", "unknown", "expired", "replayed", "wrong_device", "wrong_purpose"]


class NonceStore(Protocol):
    def issue(
        self, nonce: Nonce, serial: ProductSerial, issued_at: datetime, expires_at: datetime
    ) -> None: ...

    def consume(self, nonce: str, serial: str, now: datetime) -> NonceOutcome:
        """Mark the nonce used, atomically; say why not when it cannot be used."""
        ...


@dataclass(frozen=True)
class UnitState:
    """What one attestation reads of the store, in the transaction that spends its nonce."""

    nonce: NonceOutcome | None  # None: no nonce was given to spend
    device: DeviceRecord | None
    #: The highest firmware security version the unit passed attestation with.
    floor: int | None
    #: The allow-list entry of the claimed firmware (None: not asked, or not published).
    release: FirmwareRelease | None


class AttestationRecords(Protocol):
    def device(self, serial: str) -> DeviceRecord | None: ...

    def spend_and_read(
        self, nonce: str | None, serial: str, now: datetime, firmware_version: str | None
    ) -> UnitState:
        """One transaction: spend ``nonce`` for ``serial`` as ``NonceStore.consume`` does
        (atomically, once), then read the unit, its floor and, when ``firmware_version`` is
        given, that release of the unit's product on the firmware allow-list."""
        ...

    def record(self, result: AttestationResult, now: datetime) -> None: ...


class ResultSigner(Protocol):
    def sign(self, result: AttestationResult, now: datetime) -> bytes: ...


@dataclass(frozen=True)
class _Claimed:
    """What the evidence claims, whichever shape it came in, before any check."""

    nonce: str
    serial: str
    signed_ok: Callable[[ec.EllipticCurvePublicKey], bool]
    firmware: tuple[str, bytes] | None  # (version, SHA-256 of the image)
    quote: tuple[bytes, bytes] | None = None  # (TPMS_ATTEST, TPMT_SIGNATURE)


#: Raises ``TrustError`` unless ``leaf`` chains through ``intermediates`` to a trusted root.
ChainVerifier = Callable[[x509.Certificate, Sequence[x509.Certificate], datetime], None]


@dataclass(frozen=True)
class Challenge:
    nonce: Nonce
    serial: ProductSerial
    expires_at: datetime


class AttestationService:
    def __init__(
        self,
        *,
        nonces: NonceStore,
        records: AttestationRecords,
        verify_chain: ChainVerifier,
        clock: Callable[[], datetime],
        nonce_ttl: timedelta,
        firmware: FirmwareAllowList | None = None,
        result_signer: ResultSigner | None = None,
    ) -> None:
        self._firmware = firmware
        self._result_signer = result_signer
        self._nonces = nonces
        self._records = records
        self._verify_chain = verify_chain
        self._clock = clock
        self._ttl = nonce_ttl

    def challenge(self, serial: str) -> Challenge:
        if self._records.device(serial) is None:
            raise NotFoundError(f"no enrolled device has serial {serial!r}", code="device_unknown")
        now = self._clock()
        nonce = Nonce(secrets.token_urlsafe(32))
        self._nonces.issue(nonce, ProductSerial(serial), now, now + self._ttl)
        return Challenge(nonce, ProductSerial(serial), now + self._ttl)

    def verify(
        self, *, evidence: bytes, signature: bytes | None = None, chain: Sequence[bytes]
    ) -> AttestationResult:
        """Appraise evidence: an EAT COSE_Sign1 (``signature`` None) or v1 JSON + signature."""
        claimed = _claimed(evidence, signature)
        certs = parse_chain(chain)
        now = self._clock()
        leaf, intermediates = certs[0], certs[1:]
        state = self._spend_and_read(claimed, now)
        device, release = state.device, state.release
        findings = [
            self._nonce_finding("wrong_purpose" if state.nonce is None else state.nonce),
            self._chain_finding(leaf, intermediates, now),
            _signature_finding(leaf, claimed.signed_ok),
            *_device_findings(device, leaf),
            *self._firmware_findings(device, claimed.firmware, release, state.floor),
            *quote_findings(device, claimed.nonce, claimed.firmware, claimed.quote),
        ]
        passed = {f.id for f in findings if f.status == "pass"}
        authenticated = {"chain.valid", "signature.valid", "device.enrolled"} <= passed
        result = AttestationResult(
            serial=claimed.serial,
            findings=tuple(findings),
            nonce=claimed.nonce,
            firmware=claimed.firmware if authenticated else None,
            security_version=_security_version(release, passed),
        )
        if self._result_signer is not None:
            result = replace(result, token=self._result_signer.sign(result, now))
        self._records.record(result, now)
        return result

    def _spend_and_read(self, claimed: _Claimed, now: datetime) -> UnitState:
        """Spend the attestation nonce and read the unit; a nonce issued for device auth is
        refused (``nonce`` None), not spent. The claimed release is read only when there is
        an allow-list to appraise it against (its product is the unit's, known in the read)."""
        spend = None if claimed.nonce.startswith(DEVICE_AUTH_NONCE_PREFIX) else claimed.nonce
        version = (
            claimed.firmware[0]
            if self._firmware is not None and claimed.firmware is not None
            else None
        )
        return self._records.spend_and_read(spend, claimed.serial, now, version)

    def _firmware_findings(
        self,
        device: DeviceRecord | None,
        firmware: tuple[str, bytes] | None,
        release: FirmwareRelease | None,
        floor: int | None,
    ) -> list[Finding]:
        if self._firmware is None or device is None:
            return []
        if firmware is None:
            if not self._firmware.has_policy(device.product):
                return []  # identity-only evidence, for products without a firmware allow-list
            return [
                Finding(
                    "firmware",
                    "fail",
                    "firmware.unreported",
                    f"{device.product} has a firmware allow-list: evidence must be an EAT",
                )
            ]
        version, measurement = firmware
        return list(
            release_findings(
                release,
                product=device.product,
                version=version,
                measurement=measurement,
                floor=floor,
            )
        )

    def _chain_finding(
        self, leaf: x509.Certificate, intermediates: Sequence[x509.Certificate], now: datetime
    ) -> Finding:
        try:
            self._verify_chain(leaf, intermediates, now)
        except TrustError as e:
            return Finding("chain", "fail", "chain.untrusted", e.message)
        return Finding("chain", "pass", "chain.valid", "chains to the factory root")

    @staticmethod
    def _nonce_finding(outcome: NonceOutcome) -> Finding:
        messages = {
            "valid": "issued by us, unexpired, now used",
            "unknown": "this nonce was never issued",
            "expired": "this nonce expired before it was used",
            "replayed": "this nonce was already used",
            "wrong_device": "this nonce was issued to another device",
            "wrong_purpose": "this nonce was issued for device authentication",
        }
        if outcome == "valid":
            return Finding("nonce", "pass", "nonce.valid", messages[outcome])
        return Finding("nonce", "fail", f"nonce.{outcome}", messages[outcome])


def _claimed(evidence: bytes, signature: bytes | None) -> _Claimed:
    if not signature:
        if evidence[:1] != b"\xd2":
            raise EvidenceMalformed("evidence without a signature must be a tagged COSE_Sign1")
        eat = parse_eat(evidence)
        c = eat.claims
        return _Claimed(
            c.nonce,
            c.serial,
            eat.token.verify,
            (c.firmware_version, c.firmware_sha256),
            c.tpm_quote,
        )
    parsed = parse_evidence(evidence)

    def signed_ok(key: ec.EllipticCurvePublicKey) -> bool:
        try:
            key.verify(signature, evidence, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    return _Claimed(parsed.nonce, parsed.serial, signed_ok, None)


def _security_version(release: FirmwareRelease | None, passed: set[str]) -> int | None:
    """The security version of firmware the unit proved it runs (every check passed)."""
    if release is None:
        return None
    if not {"firmware.allowed", "chain.valid", "signature.valid", "nonce.valid"} <= passed:
        return None
    return release.security_version


def _signature_finding(
    leaf: x509.Certificate, signed_ok: Callable[[ec.EllipticCurvePublicKey], bool]
) -> Finding:
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        return Finding("signature", "fail", "signature.algorithm", "device key is not EC P-256")
    if not signed_ok(key):
        return Finding("signature", "fail", "signature.invalid", "signature does not verify")
    return Finding("signature", "pass", "signature.valid", "signed by the certified key")


def _device_findings(device: DeviceRecord | None, leaf: x509.Certificate) -> list[Finding]:
    if device is None:
        return [Finding("device", "fail", "device.unknown", "no enrolled device has this serial")]
    findings = [Finding("device", "pass", "device.enrolled", "the serial is enrolled")]
    if leaf.public_bytes(Encoding.DER) != device.cert_der:
        findings.append(
            Finding("device", "fail", "device.cert_mismatch", "not this unit's certificate")
        )
    if device.status != "active":
        findings.append(
            Finding("status", "fail", f"status.{device.status}", f"device is {device.status}")
        )
    else:
        findings.append(Finding("status", "pass", "status.active", "device is active"))
    return findings
