"""What a TPM quote and a TPM2_Certify must say, and checking that they say it.

Firmware is measured into ``FIRMWARE_PCR`` (SHA-256 bank) once per boot, from reset. A quote
over that PCR with the attestation nonce as qualifying data proves, under a restricted
attestation key, which firmware booted: the verifier recomputes the PCR from the allow-listed
measurement.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from birthright.tpm.wire import (
    TPM_ALG_SHA256,
    TPM_ST_ATTEST_CERTIFY,
    TPM_ST_ATTEST_QUOTE,
    EccPublic,
    TpmStructureError,
    parse_attest,
    parse_signature,
)

#: The PCR that holds the firmware measurement (SRTM / platform firmware code).
FIRMWARE_PCR = 0
_QUOTE_LABEL = b"birthright tpm quote v1\0"
_CERTIFY_LABEL = b"birthright tpm certify v1\0"


def quote_qualifying_data(nonce: str) -> bytes:
    """The quote's qualifying data for an attestation nonce (bounded to one digest)."""
    return hashlib.sha256(_QUOTE_LABEL + nonce.encode()).digest()


def certify_qualifying_data(secret: bytes) -> bytes:
    """The certify's qualifying data: proves the AK's TPM recovered the activation secret."""
    return hashlib.sha256(_CERTIFY_LABEL + secret).digest()


def pcr_after(measurement: bytes, pcr: bytes = bytes(32)) -> bytes:
    """A SHA-256 PCR's value after extending ``measurement`` into ``pcr``."""
    return hashlib.sha256(pcr + measurement).digest()


def expected_pcr_digest(measurement: bytes) -> bytes:
    """The quote's pcrDigest when only ``measurement`` was extended into FIRMWARE_PCR."""
    return hashlib.sha256(pcr_after(measurement)).digest()


@dataclass(frozen=True)
class QuoteVerdict:
    """``ok`` or the reason a quote fails: ``malformed``, ``signature_invalid``,
    ``nonce_mismatch``, ``pcr_selection``, ``pcr_mismatch``."""

    outcome: str
    message: str

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def _signed_by(key: EccPublic, attest: bytes, signature: bytes) -> bool:
    try:
        key.public_key.verify(parse_signature(signature), attest, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def check_quote(
    *, attest: bytes, signature: bytes, ak: EccPublic, nonce: str, measurement: bytes
) -> QuoteVerdict:
    """Check a firmware quote against the device's attestation key and the claimed firmware."""
    try:
        parsed = parse_attest(attest)
        if parsed.type != TPM_ST_ATTEST_QUOTE:
            return QuoteVerdict("malformed", "the TPM structure is not a quote")
        if not _signed_by(ak, attest, signature):
            return QuoteVerdict("signature_invalid", "the quote is not signed by this unit's AK")
    except TpmStructureError as e:
        return QuoteVerdict("malformed", e.message)
    if parsed.extra_data != quote_qualifying_data(nonce):
        return QuoteVerdict("nonce_mismatch", "the quote was not made for this nonce")
    wanted = (TPM_ALG_SHA256, frozenset({FIRMWARE_PCR}))
    if [(s.hash_alg, s.pcrs) for s in parsed.pcr_select if s.pcrs] != [wanted]:
        return QuoteVerdict(
            "pcr_selection", f"the quote must cover exactly SHA-256 PCR {FIRMWARE_PCR}"
        )
    if parsed.pcr_digest != expected_pcr_digest(measurement):
        return QuoteVerdict(
            "pcr_mismatch", "the quoted PCR does not match the reported firmware measurement"
        )
    return QuoteVerdict("ok", f"PCR {FIRMWARE_PCR} quoted by the unit's AK for this nonce")


def check_certify(
    *, attest: bytes, signature: bytes, ak: EccPublic, certified: EccPublic, secret: bytes
) -> str | None:
    """None when ``ak`` certified ``certified`` after recovering ``secret``; else why not."""
    try:
        parsed = parse_attest(attest)
        if parsed.type != TPM_ST_ATTEST_CERTIFY:
            return "the TPM structure is not a certify statement"
        if not _signed_by(ak, attest, signature):
            return "the certify statement is not signed by the attestation key"
    except TpmStructureError as e:
        return e.message
    if parsed.extra_data != certify_qualifying_data(secret):
        return "the certify statement is not bound to this credential challenge"
    if parsed.certified_name != certified.name:
        return "the certify statement names another key"
    return None
