"""Look for private key material where none may be: databases, logs, workspaces, temp files."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

#: Unencrypted private keys in PEM (PKCS#8, SEC1, PKCS#1, OpenSSH).
PEM_PRIVATE = re.compile(rb"-----BEGIN (?:EC |RSA |OPENSSH )?PRIVATE KEY-----")
#: DER starts of an unencrypted P-256 key: SEC1 ECPrivateKey and PKCS#8 PrivateKeyInfo.
DER_PRIVATE = (
    bytes.fromhex("307702010104 20".replace(" ", "")),
    bytes.fromhex("308187020100301306072a8648ce3d020106082a8648ce3d030107"),
)


def scan_bytes(data: bytes, secrets: Iterable[str] = ()) -> list[str]:
    found = []
    if PEM_PRIVATE.search(data):
        found.append("PEM private key")
    found.extend(f"DER private key {p.hex()[:12]}…" for p in DER_PRIVATE if p in data)
    found.extend("a known secret" for s in secrets if s and s.encode() in data)
    return found


def scan_tree(
    root: Path, secrets: Iterable[str] = (), *, skip: Iterable[Path] = ()
) -> dict[str, list[str]]:
    """Every file under ``root`` (except ``skip`` folders) mapped to what it leaks."""
    skipped = [p.resolve() for p in skip]
    wanted = list(secrets)
    leaks = {}
    for path in root.rglob("*"):
        if not path.is_file() or any(path.resolve().is_relative_to(s) for s in skipped):
            continue
        hits = scan_bytes(path.read_bytes(), wanted)
        if hits:
            leaks[str(path)] = hits
    return leaks


#: The header of a passphrase-encrypted PKCS#8 key (what CA and TLS key files must start with).
ENCRYPTED_PEM_HEADER = " ".join(("-----BEGIN ENCRYPTED", "PRIVATE", "KEY-----"))
