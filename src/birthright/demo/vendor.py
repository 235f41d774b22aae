"""A simulated secure-element vendor: a manifest signing key and certificate, and signed
Trust Platform manifest entries, made at run time for the demo and the tests.

The entries have the vendor's shape (flattened JWS JSON: protected header with ``alg``,
``kid``, ``x5t#S256``; unprotected header with ``uniqueId``; the payload a SecureElement with
``uniqueId`` and ``publicKeySet``), signed ES256 with the raw r||s signature JWS uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from birthright.reconcile.microchip import b64url


@dataclass(frozen=True)
class Vendor:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def protected_header(self, **overrides: Any) -> dict[str, Any]:
        ski = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        header: dict[str, Any] = {
            "typ": "JWT",
            "alg": "ES256",
            "kid": b64url(ski.digest),
            "x5t#S256": b64url(self.certificate.fingerprint(hashes.SHA256())),
        }
        header.update(overrides)
        return {k: v for k, v in header.items() if v is not None}

    def entry(
        self,
        unique_id: str,
        keys: list[ec.EllipticCurvePublicKey] | None = None,
        *,
        header: dict[str, Any] | None = None,
        header_unique_id: str | None = None,
    ) -> dict[str, Any]:
        """One SignedSecureElement for chip ``unique_id`` (a fresh key when none given)."""
        public_keys = keys or [ec.generate_private_key(ec.SECP256R1()).public_key()]
        payload = {
            "version": 1,
            "model": "ATECC608B",
            "partNumber": "ATECC608B-TFLXTLS",
            "manufacturer": {"organizationName": "Microchip Technology Inc"},
            "uniqueId": unique_id,
            "publicKeySet": {"keys": [_jwk(str(i), k) for i, k in enumerate(public_keys)]},
        }
        protected = b64url(json.dumps(header or self.protected_header()).encode())
        body = b64url(json.dumps(payload).encode())
        der = self.key.sign(f"{protected}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return {
            "payload": body,
            "protected": protected,
            "header": {"uniqueId": header_unique_id or unique_id},
            "signature": b64url(r.to_bytes(32) + s.to_bytes(32)),
        }


def _jwk(kid: str, key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    numbers = key.public_numbers()
    return {
        "kid": kid,
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(numbers.x.to_bytes(32)),
        "y": b64url(numbers.y.to_bytes(32)),
    }


def make_vendor(now: datetime, name: str = "Demo Secure Element Vendor") -> Vendor:
    """A self-signed manifest signing certificate (ECDSA P-256) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{name} manifest signer"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return Vendor(key, cert)
