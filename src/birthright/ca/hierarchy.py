"""The CA hierarchy: an offline root and an issuing CA (pathLen 0) below it. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from birthright.ca.profile import authority_key_identifier
from birthright.errors import ConfigError

ROOT_LIFETIME = timedelta(days=25 * 365 + 6)
ISSUING_LIFETIME = timedelta(days=20 * 365 + 5)

#: keyCertSign + cRLSign, plus digitalSignature so the issuing CA can sign OCSP responses
#: itself (RFC 6960 §4.2.2.2 allows the CA's own key; RFC 5280 wants digitalSignature for it).
CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def ca_name(organization: str, role: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organization} {role}"[:64]),
        ]
    )


def build_root(
    *, organization: str, root_key: ec.EllipticCurvePrivateKey, now: datetime
) -> x509.Certificate:
    """A self-signed root: CA:true (critical, no path length limit), keyCertSign + cRLSign."""
    name = ca_name(organization, "Root CA")
    ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    start = _second(now)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + ROOT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)
        .add_extension(ski, critical=False)
        .sign(root_key, hashes.SHA256())
    )


def build_issuing(
    *,
    organization: str,
    issuing_public_key: ec.EllipticCurvePublicKey,
    root_cert: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    now: datetime,
    role: str = "Issuing CA",
) -> x509.Certificate:
    """An issuing CA signed by the root: CA:true pathLen 0 (critical), SKI, AKI."""
    start = _second(now)
    not_after = min(start + ISSUING_LIFETIME, root_cert.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(ca_name(organization, role))
        .issuer_name(root_cert.subject)
        .public_key(issuing_public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(issuing_public_key), critical=False
        )
        .add_extension(authority_key_identifier(root_cert), critical=False)
        .sign(root_key, hashes.SHA256())
    )


def init_hierarchy(
    *,
    organization: str,
    now: datetime,
    root_key: ec.EllipticCurvePrivateKey,
    issuing_key: ec.EllipticCurvePrivateKey,
) -> tuple[x509.Certificate, x509.Certificate]:
    """``(root certificate, issuing CA certificate)``, both ECDSA P-256 with SHA-256."""
    for role, key in (("root", root_key), ("issuing", issuing_key)):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ConfigError(f"the {role} CA key must be EC P-256", code="ca_key_type")
    root = build_root(organization=organization, root_key=root_key, now=now)
    issuing = build_issuing(
        organization=organization,
        issuing_public_key=issuing_key.public_key(),
        root_cert=root,
        root_key=root_key,
        now=now,
    )
    return root, issuing


def _second(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.replace(microsecond=0)
