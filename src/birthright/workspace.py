"""The on-disk layout of a deployment's state (settings, SQLite database, dev CA material).

``birthright demo`` lays a workspace out; every command that works on a deployment takes
``--workspace DIR`` and finds its parts here.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from birthright.errors import ConfigError


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def settings_file(self) -> Path:
        return self.root / "birthright.toml"

    @property
    def database_file(self) -> Path:
        return self.root / "birthright.db"

    @property
    def ca_dir(self) -> Path:
        """Certificates and (dev only) passphrase-encrypted CA keys."""
        return self.root / "ca"

    @property
    def hsm_dir(self) -> Path:
        """A dev SoftHSM2 token directory for CA keys kept in PKCS#11."""
        return self.root / "hsm"

    @property
    def secrets_dir(self) -> Path:
        """Dev-only secrets (CA passphrase, token PINs), each file mode 0600."""
        return self.root / "secrets"

    @property
    def certs_dir(self) -> Path:
        """Exported certificates: root.pem, issuing.pem, devices/<serial>.pem."""
        return self.root / "certs"

    @property
    def devices_dir(self) -> Path:
        """Simulated secure elements made by ``birthright sim`` for the demo."""
        return self.root / "devices"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def create(self) -> None:
        for d in (self.root, self.ca_dir, self.certs_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def secret(self, name: str, *, create: bool = False) -> str:
        """Read the dev secret ``name``; with ``create``, make a random one when missing."""
        path = self.secrets_dir / name
        if create and not path.exists():
            self.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_secret_file(path, secrets.token_urlsafe(24))
        try:
            return read_secret_file(path)
        except FileNotFoundError as e:
            raise ConfigError(
                f"the secret {name!r} is missing from {self.secrets_dir}", code="secret_missing"
            ) from e


def write_secret_file(path: Path, value: str) -> None:
    """Write ``value`` to ``path`` readable by the owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)


def read_secret_file(path: Path) -> str:
    return path.read_text().strip()
