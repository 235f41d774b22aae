"""COSE_Sign1 (RFC 9052) with ES256 only, built on ``cbor2`` alone. Parsed once, strictly.

The signature is raw r‖s (64 bytes) over the Sig_structure
``["Signature1", protected, external_aad = b"", payload]``. Tokens must be deterministically
encoded (RFC 8949 §4.2): a token that does not re-encode to exactly its own bytes (trailing
data, duplicate keys, non-minimal lengths, indefinite lengths) is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from birthright.attest.evidence import EvidenceMalformed
from birthright.errors import InputError

COSE_SIGN1_TAG = 18
ALG = 1
KID = 4
ES256 = -7
MAX_TOKEN_BYTES = 8192
_DECODE_ERRORS = (
    cbor2.CBORDecodeError,
    ValueError,
    TypeError,
    OverflowError,
    RecursionError,
    LookupError,
)


class EvidenceAlgUnsupported(InputError):
    code = "evidence_alg_unsupported"


class EvidenceTooLarge(InputError):
    code = "evidence_too_large"
    http_status = 413


#: Signs bytes with ECDSA P-256 / SHA-256 and returns the DER signature (a SecureElement's sign).
DerSigner = Callable[[bytes], bytes]


@dataclass(frozen=True)
class Sign1:
    """A structurally valid COSE_Sign1; the signature is not yet checked."""

    protected: bytes
    kid: bytes | None
    payload: bytes
    signature: bytes  # raw r‖s, 64 bytes

    def to_be_signed(self) -> bytes:
        return sig_structure(self.protected, self.payload)

    def verify(self, key: ec.EllipticCurvePublicKey) -> bool:
        r = int.from_bytes(self.signature[:32], "big")
        s = int.from_bytes(self.signature[32:], "big")
        try:
            key.verify(encode_dss_signature(r, s), self.to_be_signed(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    return cbor2.dumps(["Signature1", protected, b"", payload], canonical=True)


def protected_header(kid: bytes | None = None) -> bytes:
    header: dict[int, Any] = {ALG: ES256}
    if kid is not None:
        header[KID] = kid
    return cbor2.dumps(header, canonical=True)


def sign1(payload: bytes, sign_der: DerSigner, *, kid: bytes | None = None) -> bytes:
    """A tagged COSE_Sign1 over ``payload``; ``sign_der`` may be a secure element's ``sign``."""
    protected = protected_header(kid)
    r, s = decode_dss_signature(sign_der(sig_structure(protected, payload)))
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, raw]), canonical=True)


def strict_loads(data: bytes, what: str) -> Any:
    """Decode one deterministic CBOR item; anything else is ``EvidenceMalformed``."""
    try:
        return cbor2.loads(
            data, max_depth=8, allow_indefinite=False, allow_duplicate_keys=False, immutable=True
        )
    except _DECODE_ERRORS as e:
        raise EvidenceMalformed(f"{what} is not well-formed CBOR") from e


def require_canonical(obj: Any, data: bytes, what: str) -> None:
    try:
        again = cbor2.dumps(obj, canonical=True)
    except _DECODE_ERRORS as e:  # pragma: no cover - decoded values always re-encode
        raise EvidenceMalformed(f"{what} does not re-encode") from e
    if again != data:
        raise EvidenceMalformed(f"{what} is not deterministically encoded (or has trailing data)")


def parse_sign1(data: bytes) -> Sign1:
    if len(data) > MAX_TOKEN_BYTES:
        raise EvidenceTooLarge(f"the token is larger than {MAX_TOKEN_BYTES} bytes")
    outer = strict_loads(data, "the token")
    if not isinstance(outer, cbor2.CBORTag) or outer.tag != COSE_SIGN1_TAG:
        raise EvidenceMalformed("the token is not a tagged COSE_Sign1 (tag 18)")
    body = outer.value
    if not isinstance(body, tuple) or len(body) != 4:
        raise EvidenceMalformed("COSE_Sign1 must be an array of four items")
    protected, unprotected, payload, signature = body
    if not isinstance(protected, bytes) or not isinstance(payload, bytes):
        raise EvidenceMalformed("the protected header and the payload must be byte strings")
    if not isinstance(unprotected, Mapping) or len(unprotected) != 0:
        raise EvidenceMalformed("the unprotected header must be an empty map")
    if not isinstance(signature, bytes) or len(signature) != 64:
        raise EvidenceMalformed("the signature must be 64 bytes (ES256 r‖s)")
    kid = _parse_protected(protected)
    rebuilt = cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature])
    require_canonical(rebuilt, data, "the token")
    return Sign1(protected=protected, kid=kid, payload=payload, signature=signature)


def _parse_protected(protected: bytes) -> bytes | None:
    header = strict_loads(protected, "the protected header")
    if not isinstance(header, Mapping):
        raise EvidenceMalformed("the protected header must be a map")
    if ALG not in header:
        raise EvidenceMalformed("the protected header names no algorithm")
    alg = header[ALG]
    if type(alg) is not int or alg != ES256:
        raise EvidenceAlgUnsupported("only ES256 (-7) is accepted")
    if set(header) - {ALG, KID}:
        raise EvidenceMalformed("the protected header holds unexpected parameters")
    kid = header.get(KID)
    if kid is not None and (not isinstance(kid, bytes) or not 1 <= len(kid) <= 64):
        raise EvidenceMalformed("kid must be a short byte string")
    require_canonical(header, protected, "the protected header")
    return kid
