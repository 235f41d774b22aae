"""A simulated secure-element vendor: the chip maker's CA, for development and tests.

Real chips leave their factory with an attestation key and a vendor certificate for it; the
vendor CA is theirs, not ours. ``birthright sim`` plays that vendor with a local CA kept in
the device folder, ``DIR/vendor-ca/``: ``root.pem`` (its certificate, the file an operator
trusts with ``birthright ca trust-se-vendor``), ``root-key.pem`` (encrypted PKCS#8, 0600)
and ``passphrase`` (0600). A device folder's vendor is created once and reused.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from birthright.ca.keys import atomic_write, load_encrypted_key, write_encrypted_key
from birthright.errors import ConfigError
from birthright.workspace import read_secret_file, write_secret_file

VENDOR_DIR = "vendor-ca"
ROOT_CERT = "root.pem"
ROOT_KEY = "root-key.pem"
PASSPHRASE_FILE = "passphrase"  # noqa: S105 - a file name
VENDOR_NAME = "Simulated SE Vendor"
ROOT_YEARS = 25
ATTESTATION_YEARS = 20


@dataclass(frozen=True)
class SimulatedVendor:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def issue_attestation_cert(
        self, public_key: ec.EllipticCurvePublicKey, *, chip_id: str, now: datetime
    ) -> x509.Certificate:
        """The vendor's certificate for one chip's attestation key (subject serialNumber =
        the chip id): an end entity that may only sign."""
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, VENDOR_NAME),
                x509.NameAttribute(NameOID.COMMON_NAME, "SE attestation key"),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, chip_id),
            ]
        )
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=365 * ATTESTATION_YEARS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(sign=True, cert_sign=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )


def vendor_dir(devices_dir: Path) -> Path:
    return devices_dir / VENDOR_DIR


def vendor_root_file(devices_dir: Path) -> Path:
    """The simulated vendor's root certificate (what the backend is told to trust)."""
    return vendor_dir(devices_dir) / ROOT_CERT


def load_or_create_vendor(devices_dir: Path, *, now: datetime | None = None) -> SimulatedVendor:
    """The device folder's simulated vendor, created on first use."""
    folder = vendor_dir(devices_dir)
    if (folder / ROOT_CERT).exists():
        return load_vendor(devices_dir)
    return create_vendor_ca(
        folder, name=VENDOR_NAME, common_name=f"{VENDOR_NAME} Attestation Root", now=now
    )


def create_vendor_ca(
    folder: Path, *, name: str, common_name: str, now: datetime | None = None
) -> SimulatedVendor:
    """A chip maker's root CA in ``folder``: ``root.pem``, ``root-key.pem`` (encrypted
    PKCS#8) and its ``passphrase`` (0600)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365 * ROOT_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign=False, cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    passphrase = secrets.token_urlsafe(24)
    write_secret_file(folder / PASSPHRASE_FILE, passphrase)
    write_encrypted_key(key, folder / ROOT_KEY, passphrase)
    atomic_write(folder / ROOT_CERT, cert.public_bytes(Encoding.PEM), mode=0o644)
    return SimulatedVendor(cert, key)


def load_vendor(devices_dir: Path) -> SimulatedVendor:
    folder = vendor_dir(devices_dir)
    try:
        cert = x509.load_pem_x509_certificate((folder / ROOT_CERT).read_bytes())
        passphrase = read_secret_file(folder / PASSPHRASE_FILE)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{folder} holds no usable simulated SE vendor") from e
    return SimulatedVendor(cert, load_encrypted_key(folder / ROOT_KEY, passphrase))


def _key_usage(*, sign: bool, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
