"""The SE vendor roots this backend trusts for genuine-chip proofs, kept in the workspace.

``W/ca/se-vendors/<sha256 of the certificate>.pem``, one self-signed CA certificate each.
The service reads them once at start: restart it after trusting a new vendor.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from birthright.errors import ConfigError, InputError
from birthright.workspace import Workspace

SE_VENDORS_DIR = "se-vendors"
MAX_ROOT_PEM_BYTES = 64 * 1024


def se_vendors_dir(ws: Workspace) -> Path:
    return ws.ca_dir / SE_VENDORS_DIR


def check_vendor_root(cert: x509.Certificate) -> None:
    """A vendor root must be a self-signed CA certificate."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise InputError(
            "an SE vendor root must be a CA certificate (basicConstraints CA:TRUE)",
            code="se_vendor_root_invalid",
        )
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature) as e:
        raise InputError(
            "an SE vendor root must be self-signed (a root, not an intermediate)",
            code="se_vendor_root_invalid",
        ) from e


def trust_se_vendor(ws: Workspace, pem: bytes) -> tuple[x509.Certificate, Path, bool]:
    """Add a vendor root to the trust store; (certificate, file, newly added)."""
    if len(pem) > MAX_ROOT_PEM_BYTES:
        raise InputError("the vendor root file is too large", code="se_vendor_root_invalid")
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as e:
        raise InputError("not a PEM X.509 certificate", code="se_vendor_root_invalid") from e
    check_vendor_root(cert)
    folder = se_vendors_dir(ws)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{cert.fingerprint(hashes.SHA256()).hex()}.pem"
    if path.exists():
        return cert, path, False
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(cert.public_bytes(Encoding.PEM))
    tmp.replace(path)
    return cert, path, True


def load_se_vendor_roots(ws: Workspace) -> list[x509.Certificate]:
    """Every trusted vendor root (none when the folder does not exist)."""
    folder = se_vendors_dir(ws)
    roots = []
    for path in sorted(folder.glob("*.pem")) if folder.is_dir() else []:
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
            check_vendor_root(cert)
        except (ValueError, InputError) as e:
            raise ConfigError(f"{path} is not a valid SE vendor root") from e
        roots.append(cert)
    return roots
