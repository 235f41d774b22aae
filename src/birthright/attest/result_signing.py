"""Signed attestation results, EAR-style (draft-ietf-rats-ear), in a COSE_Sign1 (ES256).

The payload is a deterministic CBOR map with text keys::

    {"eat_profile": RESULT_PROFILE, "iat": <int>, "ear.status": "affirming" | "warning" |
     "contraindicated", "ear.verifier-id": {"developer": "birthright", "build": <version>},
     "serial": <text>, "eat_nonce": <text or null>, "verdict": "pass" | "fail" | "indeterminate",
     "checks": [{"check": .., "status": .., "id": ..}, ...]}

The protected header names the result key by ``kid`` (first 8 bytes of SHA-256 of its SPKI).
A relying party verifies it with the backend's public result key alone.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from birthright import __version__
from birthright.attest.cose import parse_sign1, sign1
from birthright.attest.verdict import AttestationResult
from birthright.errors import BirthrightError, TrustError

RESULT_PROFILE = "tag:birthright.dev,2026:attestation-result-v1"


def key_id(public_key: ec.EllipticCurvePublicKey) -> bytes:
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()[:8]


def result_claims(result: AttestationResult, now: datetime) -> dict[str, Any]:
    return {
        "eat_profile": RESULT_PROFILE,
        "iat": int(now.timestamp()),
        "ear.status": result.status,
        "ear.verifier-id": {"developer": "birthright", "build": __version__},
        "serial": result.serial,
        "eat_nonce": result.nonce,
        "verdict": result.verdict,
        "checks": [{"check": f.check, "status": f.status, "id": f.id} for f in result.findings],
    }


class ResultSigner:
    """Signs attestation results with the backend's result key (EC P-256)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.kid = key_id(self.public_key)

    def sign(self, result: AttestationResult, now: datetime) -> bytes:
        payload = cbor2.dumps(result_claims(result, now), canonical=True)
        return sign1(payload, self._sign_der, kid=self.kid)

    def _sign_der(self, data: bytes) -> bytes:
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))

    def __repr__(self) -> str:
        return f"ResultSigner(kid={self.kid.hex()!r})"


def verify_result(token: bytes, public_key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """The claims of a result token signed by ``public_key``; ``TrustError`` otherwise."""
    try:
        sign1_token = parse_sign1(token)
    except BirthrightError as e:
        raise TrustError(f"malformed result token: {e.message}", code="result_malformed") from e
    if sign1_token.kid != key_id(public_key) or not sign1_token.verify(public_key):
        raise TrustError("the result is not signed by this key", code="result_signature_invalid")
    claims = cbor2.loads(sign1_token.payload)  # signed by the backend: trusted from here on
    if not isinstance(claims, dict) or claims.get("eat_profile") != RESULT_PROFILE:
        raise TrustError("the token is not an attestation result", code="result_malformed")
    return claims


def issued_at(claims: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(int(claims["iat"]), UTC)
