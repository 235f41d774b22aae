"""The operational CA: short-lived, LDevID-style device certificates (ADR 0011).

Its own self-signed anchor, apart from the factory hierarchy: a relying service that trusts
operational certificates does not thereby trust factory certificates, and the reverse. The
key is a workspace key file (encrypted), made on first use, first writer wins; the
certificate is rebuilt for that key when missing or not matching it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from birthright.ca import keys
from birthright.ca.hierarchy import CA_KEY_USAGE, ca_name
from birthright.ca.profile import authority_key_identifier
from birthright.errors import ConfigError
from birthright.workspace import Workspace

OPERATIONAL_CA_CERT = "operational-ca.pem"
OPERATIONAL_CA_KEY = "operational-ca-key.pem"
OPERATIONAL_CA_PUBLIC = "operational-ca-public.pem"
SECRET_OPERATIONAL_CA_PASSPHRASE = "operational-ca-passphrase"  # noqa: S105 - a file name
CA_LIFETIME = timedelta(days=3650)
DEFAULT_LIFETIME = timedelta(days=7)
_LEAF_USAGE = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


@dataclass(frozen=True)
class OperationalCa:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def issue(
        self,
        public_key: ec.EllipticCurvePublicKey,
        *,
        serial: str,
        now: datetime,
        lifetime: timedelta = DEFAULT_LIFETIME,
    ) -> x509.Certificate:
        """An operational certificate for ``serial``'s key: clientAuth, days not decades."""
        start = now.replace(microsecond=0) - timedelta(minutes=5)
        not_after = min(now.replace(microsecond=0) + lifetime, self.cert.not_valid_after_utc)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.SERIAL_NUMBER, serial),
                x509.NameAttribute(NameOID.COMMON_NAME, serial),
            ]
        )
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_LEAF_USAGE, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(authority_key_identifier(self.cert), critical=False)
            .sign(self.key, hashes.SHA256())
        )


def build_operational_ca_cert(
    *, organization: str, key: ec.EllipticCurvePrivateKey, now: datetime
) -> x509.Certificate:
    name = ca_name(organization, "Operational CA")
    start = now.replace(microsecond=0)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def load_or_create_operational_ca(
    ws: Workspace, *, organization: str, now: datetime
) -> OperationalCa:
    """The workspace's operational CA, created on first use."""
    ws.ca_dir.mkdir(parents=True, exist_ok=True)
    key = keys.load_or_create_key_file(
        ws.ca_dir / OPERATIONAL_CA_KEY,
        ws.ca_dir / OPERATIONAL_CA_PUBLIC,
        ws.secret(SECRET_OPERATIONAL_CA_PASSPHRASE, create=True),
    )
    path = ws.ca_dir / OPERATIONAL_CA_CERT
    cert: x509.Certificate | None = None
    if path.exists():
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except ValueError as e:
            raise ConfigError(f"{path} is not a PEM certificate", code="ca_cert_invalid") from e
    if cert is None or cert.public_key() != key.public_key():
        cert = build_operational_ca_cert(organization=organization, key=key, now=now)
        pem = cert.public_bytes(Encoding.PEM)
        keys.atomic_write(path, pem, mode=0o644)
        keys.atomic_write(ws.certs_dir / OPERATIONAL_CA_CERT, pem, mode=0o644)
    return OperationalCa(cert, key)
