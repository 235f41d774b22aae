"""Where CA private keys live: a passphrase-encrypted PKCS#8 file (dev) or a PKCS#11 token.

Edge module (files, tokens). Passphrases and PINs are passed in by the caller; they never appear
in a message, a log line or an exception.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from birthright.errors import ConfigError
from birthright.se.signer import ExternalKeySigner

#: Each CA key gets its own token key label.
ISSUING_KEY_LABEL = "issuing"


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Atomically replace ``path`` with ``data``; the file is created with ``mode`` (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_encrypted_key(key: ec.EllipticCurvePrivateKey, path: Path, passphrase: str) -> None:
    """Write ``key`` as encrypted PKCS#8 PEM (``ENCRYPTED PRIVATE KEY``), mode 0600."""
    if not passphrase:
        raise ConfigError("a CA key file needs a non-empty passphrase", code="ca_passphrase_empty")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    )
    atomic_write(path, pem)


def load_encrypted_key(path: Path, passphrase: str) -> ec.EllipticCurvePrivateKey:
    """Decrypt the PKCS#8 key at ``path``; ``ConfigError`` when missing, wrong or not EC P-256."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise ConfigError(f"CA key file {path} does not exist", code="ca_key_missing") from e
    except OSError as e:
        raise ConfigError(
            f"CA key file {path} cannot be read ({e.strerror})", code="ca_key_unreadable"
        ) from e
    try:
        key = serialization.load_pem_private_key(data, password=passphrase.encode())
    except TypeError as e:
        raise ConfigError(
            f"CA key file {path} is not encrypted; refusing to use a plaintext CA key",
            code="ca_key_unencrypted",
        ) from e
    except ValueError as e:
        raise ConfigError(
            f"cannot decrypt CA key file {path}: the passphrase is wrong or the file is damaged",
            code="ca_passphrase_wrong",
        ) from e
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(f"CA key file {path} does not hold an EC P-256 key", code="ca_key_type")
    return key


def is_softhsm2(module_path: str) -> bool:
    return "softhsm" in Path(module_path).name.lower()


def softhsm2_conf_path(hsm_dir: Path) -> Path:
    return hsm_dir / "softhsm2.conf"


def create_token_key(
    *,
    module_path: str,
    hsm_dir: Path | None,
    token_label: str,
    so_pin: str,
    pin: str,
    key_label: str = ISSUING_KEY_LABEL,
) -> ExternalKeySigner:
    """Generate a non-extractable P-256 CA key on a token and return a signer for it.

    With ``hsm_dir`` (SoftHSM2 in development) a private SoftHSM2 configuration and token are
    created there first, with ``so_pin``; without it the token must already exist (a real HSM)
    and ``so_pin`` is unused.
    """
    from birthright.se import pkcs11 as p11

    conf = None
    if hsm_dir is not None:
        conf = p11.write_softhsm2_conf(softhsm2_conf_path(hsm_dir), hsm_dir / "tokens")
        p11.init_token(
            module_path=module_path, conf_path=conf, label=token_label, so_pin=so_pin, pin=pin
        )
    lib = p11.load_module(module_path, softhsm2_conf=conf)
    return p11.generate_token_key(lib, token_label=token_label, pin=pin, key_label=key_label)


def open_token_key(
    *,
    module_path: str,
    softhsm2_conf: Path | None,
    token_label: str,
    pin: str,
    key_label: str = ISSUING_KEY_LABEL,
) -> ExternalKeySigner:
    """A signer for the existing CA key ``key_label`` on token ``token_label``."""
    from birthright.se import pkcs11 as p11

    lib = p11.load_module(module_path, softhsm2_conf=softhsm2_conf)
    return p11.load_token_key(lib, token_label=token_label, pin=pin, key_label=key_label)


def load_or_create_key_file(
    path: Path, public_path: Path, passphrase: str
) -> ec.EllipticCurvePrivateKey:
    """A workspace's dev signing key (audit, release, result, report): load it, or create it
    on first use. Creation is first-writer-wins (hard link onto the final name), so processes
    starting at once end up with the same key. The public half is kept beside it."""
    if not path.exists():
        staging = path.with_name(f".{path.name}.{os.getpid()}.new")
        write_encrypted_key(ec.generate_private_key(ec.SECP256R1()), staging, passphrase)
        try:
            os.link(staging, path)
        except FileExistsError:
            pass  # another process created it first; use theirs
        finally:
            staging.unlink(missing_ok=True)
    key = load_encrypted_key(path, passphrase)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if not public_path.exists() or public_path.read_bytes() != pem:
        atomic_write(public_path, pem, mode=0o644)
    return key
