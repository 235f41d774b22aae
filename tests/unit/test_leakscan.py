"""The leak scanner itself must find what it claims to find."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.leakscan import scan_bytes, scan_tree

KEY = ec.generate_private_key(ec.SECP256R1())


def _encoded(encoding: serialization.Encoding, fmt: serialization.PrivateFormat) -> bytes:
    return KEY.private_bytes(encoding, fmt, serialization.NoEncryption())


def test_finds_pem_and_der_private_keys_embedded_in_other_bytes() -> None:
    for enc in (serialization.Encoding.PEM, serialization.Encoding.DER):
        for fmt in (
            serialization.PrivateFormat.PKCS8,
            serialization.PrivateFormat.TraditionalOpenSSL,
        ):
            assert scan_bytes(b"junk" + _encoded(enc, fmt) + b"junk"), (enc, fmt)


def test_finds_known_secrets_and_ignores_public_material(tmp_path: Path) -> None:
    public = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert scan_bytes(public) == []
    (tmp_path / "log.txt").write_text("pin=hunter2-secret")
    assert scan_tree(tmp_path, ["hunter2-secret"]) == {
        str(tmp_path / "log.txt"): ["a known secret"]
    }
