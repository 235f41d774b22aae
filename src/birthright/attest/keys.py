"""Where the attestation keys live (edge module: files). Neither is a CA key.

* the **release key** signs firmware manifests: ``<ws>/ca/release-key.pem`` (encrypted PKCS#8,
  passphrase in the dev secret ``release-passphrase``), public half ``release-key.pub.pem``.
  In production the private half lives with the firmware build pipeline, not the backend.
* the **result key** signs attestation results: ``<ws>/ca/attestation-result-key.pem`` (dev
  secret ``attestation-result-passphrase``), public half ``attestation-result-key.pub.pem``.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from birthright.ca.keys import (
    load_or_create_key_file,
)
from birthright.errors import ConfigError
from birthright.workspace import Workspace

RELEASE_KEY = ("release-key", "release-passphrase")
RESULT_KEY = ("attestation-result-key", "attestation-result-passphrase")


def private_path(ws: Workspace, name: tuple[str, str]) -> Path:
    return ws.ca_dir / f"{name[0]}.pem"


def public_path(ws: Workspace, name: tuple[str, str]) -> Path:
    return ws.ca_dir / f"{name[0]}.pub.pem"


def load_or_create_key(ws: Workspace, name: tuple[str, str]) -> ec.EllipticCurvePrivateKey:
    """Load the key, creating it (first writer wins) and its passphrase on first use."""
    return load_or_create_key_file(
        private_path(ws, name), public_path(ws, name), ws.secret(name[1], create=True)
    )


def load_public_key(ws: Workspace, name: tuple[str, str]) -> ec.EllipticCurvePublicKey:
    path = public_path(ws, name)
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError as e:
        raise ConfigError(f"public key {path} does not exist", code=f"{_code(name)}_missing") from e
    except ValueError as e:
        raise ConfigError(f"{path} is not a PEM public key", code=f"{_code(name)}_invalid") from e
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(f"{path} is not an EC P-256 key", code=f"{_code(name)}_invalid")
    return key


def _code(name: tuple[str, str]) -> str:
    return name[0].replace("-", "_")
