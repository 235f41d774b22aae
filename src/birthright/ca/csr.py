"""PKCS#10 certificate requests: untrusted bytes in, a checked ``ParsedCsr`` out.

Parse once, then trust: ``parse_csr`` checks every invariant the rest of the system relies on
(size, encoding, EC P-256 key, ECDSA-SHA256 signature that verifies under the enclosed key,
which proves possession of the private key). Everything after works with ``ParsedCsr``.

The request's subject and extensions are deliberately ignored: the backend, not the station,
decides what goes into a device certificate.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import SignatureAlgorithmOID

from birthright.errors import InputError

DEFAULT_MAX_CSR_BYTES = 16 * 1024
_PEM_MARKER = b"-----BEGIN"


class CsrError(InputError):
    """A certificate request was refused; ``code`` says why (stable, returned by the API)."""

    code = "csr_malformed"


@dataclass(frozen=True)
class ParsedCsr:
    """A request whose encoding, key and proof of possession have been checked."""

    csr: x509.CertificateSigningRequest
    public_key: ec.EllipticCurvePublicKey
    #: SubjectPublicKeyInfo, DER.
    public_key_der: bytes
    #: Hex SHA-256 of ``public_key_der``: the key's identity for uniqueness checks.
    key_fingerprint: str
    #: The request, DER.
    der: bytes

    @property
    def public_key_pem(self) -> str:
        """The key's SubjectPublicKeyInfo, PEM."""
        return self.public_key.public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        ).decode()


def key_fingerprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """Hex SHA-256 of the key's SubjectPublicKeyInfo DER."""
    return hashlib.sha256(_spki(public_key)).hexdigest()


def parse_csr(data: bytes, *, max_bytes: int = DEFAULT_MAX_CSR_BYTES) -> ParsedCsr:
    """Check an untrusted DER (or PEM) PKCS#10 request; raise ``CsrError`` on any defect."""
    if len(data) > max_bytes:
        raise CsrError(
            f"the certificate request is {len(data)} bytes; the limit is {max_bytes}",
            code="csr_too_large",
        )
    csr = _load(bytes(data))
    public_key = _p256_key(csr)
    _check_signature(csr)
    spki = _spki(public_key)
    return ParsedCsr(
        csr=csr,
        public_key=public_key,
        public_key_der=spki,
        key_fingerprint=hashlib.sha256(spki).hexdigest(),
        der=csr.public_bytes(Encoding.DER),
    )


def _load(data: bytes) -> x509.CertificateSigningRequest:
    pem = data.lstrip().startswith(_PEM_MARKER)
    try:
        csr = x509.load_pem_x509_csr(data) if pem else x509.load_der_x509_csr(data)
        # Touch the lazily parsed parts so a defect there is found here, not later.
        csr.extensions  # noqa: B018
        csr.subject  # noqa: B018
    except (
        ValueError,
        TypeError,  # e.g. a BIT STRING name attribute under the wrong OID
        x509.InvalidVersion,
        x509.DuplicateExtension,
        x509.UnsupportedGeneralNameType,
    ) as e:
        kind = "PEM" if pem else "DER"
        raise CsrError(f"not a well-formed {kind} PKCS#10 certificate request") from e
    return csr


def _p256_key(csr: x509.CertificateSigningRequest) -> ec.EllipticCurvePublicKey:
    try:
        key = csr.public_key()
    except UnsupportedAlgorithm as e:
        raise CsrError(
            "the request's public key is of an unsupported type; an EC P-256 key is required",
            code="key_unsupported",
        ) from e
    except ValueError as e:
        # cryptography validates the point: off the curve, at infinity, malformed encoding.
        raise CsrError(
            "the request's public key fails point validation (not a point on its curve); "
            "a weak or forged key is refused",
            code="key_invalid",
        ) from e
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise CsrError(
        f"the request carries {describe_key(key)}; an EC P-256 (secp256r1) key is required",
        code="key_unsupported",
    )


def describe_key(key: object) -> str:
    """A short human name for a public key type, e.g. ``an RSA-2048 key``."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"an EC key on curve {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"an RSA-{key.key_size} key"
    if isinstance(key, dsa.DSAPublicKey):
        return f"a DSA-{key.key_size} key"
    names = {
        ed25519.Ed25519PublicKey: "an Ed25519 key",
        ed448.Ed448PublicKey: "an Ed448 key",
        x25519.X25519PublicKey: "an X25519 key",
        x448.X448PublicKey: "an X448 key",
    }
    for cls, name in names.items():
        if isinstance(key, cls):
            return name
    return f"a {type(key).__name__}"


def _check_signature(csr: x509.CertificateSigningRequest) -> None:
    oid = csr.signature_algorithm_oid
    if oid != SignatureAlgorithmOID.ECDSA_WITH_SHA256:
        raise CsrError(
            f"the request is signed with {oid.dotted_string} ({_oid_name(oid)}); "
            "ECDSA with SHA-256 is required",
            code="csr_signature_invalid",
        )
    try:
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as e:  # pragma: no cover - defensive
        raise CsrError(
            "the request's signature cannot be checked", code="csr_signature_invalid"
        ) from e
    if not valid:
        raise CsrError(
            "the request's signature does not verify under its own public key "
            "(no proof of possession of the private key)",
            code="csr_signature_invalid",
        )


_SIGNATURE_NAMES = {
    value: name
    for name, value in vars(SignatureAlgorithmOID).items()
    if isinstance(value, x509.ObjectIdentifier)
}


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    return _SIGNATURE_NAMES.get(oid, "an unknown algorithm")


def _spki(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
