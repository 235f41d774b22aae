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
-70003  birthright-tpm-quote optional, TPM devices: ``[TPMS_ATTEST, TPMT_SIGNATURE]`` (bytes
                             each), a quote of the firmware PCR by the unit's attestation key
                             with a digest of the nonce as qualifying data
======  ===================  ===========================================================

Every claim but the quote is required and no other claim is accepted.
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
CLAIM_TPM_QUOTE = -70003
CLAIMS = {CLAIM_PROFILE, CLAIM_NONCE, CLAIM_IAT, CLAIM_SWVERSION, CLAIM_SERIAL, CLAIM_FW_SHA256}
OPTIONAL_CLAIMS = {CLAIM_TPM_QUOTE}
MAX_QUOTE_PART = 1024
_MAX_IAT = 253402300799  # 9999-12-31T23:59:59Z


@dataclass(frozen=True)
class EatClaims:
    nonce: str
    serial: str
    firmware_version: str
    firmware_sha256: bytes
    issued_at: datetime
    #: (TPMS_ATTEST, TPMT_SIGNATURE) of a firmware-PCR quote, from TPM devices.
    tpm_quote: tuple[bytes, bytes] | None = None

    def __post_init__(self) -> None:
        _check_text(self.serial, "serial")
        _check_text(self.firmware_version, "firmware version")
        if not 8 <= len(self.nonce) <= 64 or not self.nonce.isascii():
            raise EvidenceMalformed("eat_nonce must be 8 to 64 ASCII characters")
        if len(self.firmware_sha256) != 32:
            raise EvidenceMalformed("the firmware measurement must be a SHA-256 digest")
        if self.tpm_quote is not None and not all(
            0 < len(part) <= MAX_QUOTE_PART for part in self.tpm_quote
        ):
            raise EvidenceMalformed(
                f"each part of the TPM quote must be 1 to {MAX_QUOTE_PART} bytes"
            )

    def to_cbor(self) -> bytes:
        claims: dict[int, object] = {
            CLAIM_PROFILE: EAT_PROFILE,
            CLAIM_NONCE: self.nonce.encode("ascii"),
            CLAIM_IAT: int(self.issued_at.timestamp()),
            CLAIM_SWVERSION: [self.firmware_version],
            CLAIM_SERIAL: self.serial,
            CLAIM_FW_SHA256: self.firmware_sha256,
        }
        if self.tpm_quote is not None:
            claims[CLAIM_TPM_QUOTE] = list(self.tpm_quote)
        return cbor2.dumps(claims, canonical=True)


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
    if set(claims) - OPTIONAL_CLAIMS != CLAIMS:
        raise EvidenceMalformed("the EAT claims must hold exactly the evidence-eat-v1 claim set")
    quote = claims.get(CLAIM_TPM_QUOTE)
    if quote is not None and (
        not isinstance(quote, tuple)
        or len(quote) != 2
        or not all(isinstance(q, bytes) for q in quote)
    ):
        raise EvidenceMalformed("the TPM quote must be a two-item array of byte strings")
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
        tpm_quote=(quote[0], quote[1]) if quote is not None else None,
    )


def _check_text(value: str, what: str) -> None:
    if not 1 <= len(value) <= 64 or not value.isprintable():
        raise EvidenceMalformed(f"{what} must be 1 to 64 printable characters")
