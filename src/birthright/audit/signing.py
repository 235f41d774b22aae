"""The backend's audit key: an EC P-256 key, apart from every CA key, that signs chain heads.

A checkpoint signature covers a fixed, versioned byte string naming ``seq``, ``hash`` and the
UTC time of signing, so it cannot be replayed as any other kind of signature.

Development storage: ``<workspace>/ca/audit-key.pem`` (encrypted PKCS#8, passphrase in the dev
secret ``audit-passphrase``) and the public key in ``<workspace>/ca/audit-key.pub.pem``.
Verification needs only the public key. Passphrases never appear in a message or a log line.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from birthright.ca.keys import (
    load_or_create_key_file,
)
from birthright.errors import ConfigError
from birthright.settings import Settings

CHECKPOINT_CONTEXT = b"birthright-audit-checkpoint-v1\n"
AUDIT_KEY_FILE = "audit-key.pem"
AUDIT_PUBLIC_KEY_FILE = "audit-key.pub.pem"
AUDIT_PASSPHRASE_SECRET = "audit-passphrase"  # noqa: S105 - the secret's name, not its value


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("a checkpoint time must be timezone-aware")
    return at.astimezone(UTC)


def checkpoint_message(seq: int, chain_hash: str, at: datetime) -> bytes:
    """The exact bytes a checkpoint signature covers."""
    return CHECKPOINT_CONTEXT + f"{seq}\n{chain_hash}\n{_utc(at).isoformat()}".encode()


def key_id_of(public_key: ec.EllipticCurvePublicKey) -> str:
    """First 16 hex digits of the SHA-256 of the key's SubjectPublicKeyInfo."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()[:16]


def verify_checkpoint(
    public_key: ec.EllipticCurvePublicKey,
    seq: int,
    chain_hash: str,
    at: datetime,
    signature: bytes,
) -> bool:
    """True only when ``signature`` is the audit key's ECDSA signature over this checkpoint."""
    try:
        public_key.verify(
            signature, checkpoint_message(seq, chain_hash, at), ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, ValueError):
        return False
    return True


class AuditSigner:
    """Signs checkpoints with the audit private key (EC P-256)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ConfigError("the audit key must be EC P-256", code="audit_key_type")
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id_of(self.public_key)

    @classmethod
    def generate(cls) -> AuditSigner:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    def sign_checkpoint(self, seq: int, chain_hash: str, at: datetime) -> bytes:
        return self._key.sign(checkpoint_message(seq, chain_hash, at), ec.ECDSA(hashes.SHA256()))

    def __repr__(self) -> str:
        return f"AuditSigner(key_id={self.key_id!r})"


def audit_key_path(settings: Settings) -> Path:
    return settings.ws.ca_dir / AUDIT_KEY_FILE


def audit_public_key_path(settings: Settings) -> Path:
    return settings.ws.ca_dir / AUDIT_PUBLIC_KEY_FILE


def load_or_create_audit_signer(settings: Settings) -> AuditSigner:
    """Load the workspace's audit key, creating it (and its passphrase) on first use.

    Creation is first-writer-wins (hard link onto the final name), so two processes starting
    at once end up with the same key. Run it once at setup before starting several services:
    the dev passphrase file itself is created without such a guard.
    """
    passphrase = settings.ws.secret(AUDIT_PASSPHRASE_SECRET, create=True)
    return AuditSigner(
        load_or_create_key_file(
            audit_key_path(settings), audit_public_key_path(settings), passphrase
        )
    )


def load_audit_public_key(settings: Settings) -> ec.EllipticCurvePublicKey | None:
    """The audit public key, or ``None`` when the workspace has none yet."""
    path = audit_public_key_path(settings)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(
            f"audit public key {path} cannot be read ({e.strerror})", code="audit_key_unreadable"
        ) from e
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as e:
        raise ConfigError(
            f"audit public key {path} is not a PEM public key", code="audit_key_invalid"
        ) from e
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(f"audit public key {path} is not EC P-256", code="audit_key_type")
    return key
