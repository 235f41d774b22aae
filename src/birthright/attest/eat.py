"""Attestation evidence as an EAT (RFC 9711) in a COSE_Sign1, signed on chip. Parsed once.

Claim mapping (CBOR map, integer keys, deterministic encoding):

======  ===================  ===========================================================
key     name                 value
======  ===================  ===========================================================
265     eat_profile          ``EAT_PROFILE`` (text): names this exact claim set
10      eat_nonce            the backend's challenge as ASCII bytes (8–64 bytes)
6       iat                  integer seconds since the epoch, when the device signed
272     swversion            ``[firmware version]`` (text, 1–64 chars)
-70001  birthright-serial    product serial (text); private-use key: a serial is not a UEID
-70002  birthright-fw-sha256 SHA-256 of the running firmware image (32 bytes); private-use
                             key, because RFC 9711 ``measurements`` needs a CoSWID payload
======  ===================  ===========================================================

Every claim is required and no other claim is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import cbor2

from birthright.attest.cose import DerSigner, Sign1, parse_sign1, require_canonical, sign1
from birthright.attest.cose import strict_loads as _loads
from birthright.attest.evidence import EvidenceMalformed

EAT_PROFILE = "tag:birthright.dev,2026:evidence-eat-v1"
CLAIM_PROFILE = 265
CLAIM_NONCE = 10
CLAIM_IAT = 6
CLAIM_SWVERSION = 272
CLAIM_SERIAL = -70001
CLAIM_FW_SHA256 = -70002
CLAIMS = {CLAIM_PROFILE, CLAIM_NONCE, CLAIM_IAT, CLAIM_SWVERSION, CLAIM_SERIAL, CLAIM_FW_SHA256}
_MAX_IAT = 253402300799  # 9999-12-31T23:59:59Z


@dataclass(frozen=True)
class EatClaims:
    nonce: str
    serial: str
    firmware_version: str
    firmware_sha256: bytes
    issued_at: datetime

    def __post_init__(self) -> None:
        _check_text(self.serial, "serial")
        _check_text(self.firmware_version, "firmware version")
        if not 8 <= len(self.nonce) <= 64 or not self.nonce.isascii():
            raise EvidenceMalformed("eat_nonce must be 8 to 64 ASCII characters")
        if len(self.firmware_sha256) != 32:
            raise EvidenceMalformed("the firmware measurement must be a SHA-256 digest")

    def to_cbor(self) -> bytes:
        return cbor2.dumps(
            {
                CLAIM_PROFILE: EAT_PROFILE,
                CLAIM_NONCE: self.nonce.encode("ascii"),
                CLAIM_IAT: int(self.issued_at.timestamp()),
                CLAIM_SWVERSION: [self.firmware_version],
                CLAIM_SERIAL: self.serial,
                CLAIM_FW_SHA256: self.firmware_sha256,
            },
            canonical=True,
        )


@dataclass(frozen=True)
class EatEvidence:
    """A structurally valid, not yet verified, evidence token."""

    token: Sign1
    claims: EatClaims


def build_eat(claims: EatClaims, sign_der: DerSigner) -> bytes:
    """The evidence token; ``sign_der`` is the secure element's ``sign`` (DER out)."""
    return sign1(claims.to_cbor(), sign_der)


def parse_eat(data: bytes) -> EatEvidence:
    """Untrusted bytes to evidence, or ``InputError`` (``evidence_*`` codes). Never else."""
    token = parse_sign1(data)
    return EatEvidence(token=token, claims=_parse_claims(token.payload))


def _parse_claims(payload: bytes) -> EatClaims:
    claims = _loads(payload, "the EAT claims")
    if not isinstance(claims, Mapping):
        raise EvidenceMalformed("the EAT claims must be a map")
    if set(claims) != CLAIMS:
        raise EvidenceMalformed("the EAT claims must hold exactly the evidence-eat-v1 claim set")
    if claims[CLAIM_PROFILE] != EAT_PROFILE:
        raise EvidenceMalformed(f"eat_profile must be {EAT_PROFILE}")
    nonce, iat = claims[CLAIM_NONCE], claims[CLAIM_IAT]
    swversion, serial, measurement = (
        claims[CLAIM_SWVERSION],
        claims[CLAIM_SERIAL],
        claims[CLAIM_FW_SHA256],
    )
    if not isinstance(nonce, bytes) or not nonce.isascii():
        raise EvidenceMalformed("eat_nonce must be a byte string holding the challenge")
    if type(iat) is not int or not 0 <= iat <= _MAX_IAT:
        raise EvidenceMalformed("iat must be an integer NumericDate")
    if not isinstance(swversion, tuple) or len(swversion) != 1:
        raise EvidenceMalformed("swversion must be a one-item array")
    if not isinstance(serial, str) or not isinstance(swversion[0], str):
        raise EvidenceMalformed("serial and swversion must be text")
    if not isinstance(measurement, bytes):
        raise EvidenceMalformed("the firmware measurement must be a byte string")
    require_canonical(claims, payload, "the EAT claims")
    return EatClaims(
        nonce=nonce.decode("ascii"),
        serial=serial,
        firmware_version=swversion[0],
        firmware_sha256=measurement,
        issued_at=datetime.fromtimestamp(iat, UTC),
    )


def _check_text(value: str, what: str) -> None:
    if not 1 <= len(value) <= 64 or not value.isprintable():
        raise EvidenceMalformed(f"{what} must be 1 to 64 printable characters")
