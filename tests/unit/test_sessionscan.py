"""The end-of-session leak scan finds keys and secrets outside the places they belong."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.sessionscan import PLANTED, core_dumps, session_leaks


def test_a_workspace_secret_outside_its_folder_and_a_key_in_a_log_are_found(
    tmp_path: Path,
) -> None:
    tmp_path = tmp_path / PLANTED  # the session-end scan leaves planted leaks alone
    ws = tmp_path / "test_x0" / "ws"
    (ws / "secrets").mkdir(parents=True)
    (ws / "logs").mkdir()
    passphrase = "generated-passphrase-abcdef123"
    (ws / "secrets" / "ca-passphrase").write_text(passphrase)
    assert session_leaks(tmp_path, None) == {}, "a secret in its own folder is no leak"
    (ws / "logs" / "service.log").write_text(f"loaded key with passphrase={passphrase}\n")
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (ws / "birthright.db").write_bytes(b"SQLite format 3\x00" + key)
    leaks = session_leaks(tmp_path, None)
    assert leaks[str(ws / "logs" / "service.log")] == ["a known secret"]
    assert leaks[str(ws / "birthright.db")][0].startswith("DER private key")


def test_core_dumps_are_reported(tmp_path: Path) -> None:
    tmp_path = tmp_path / PLANTED
    tmp_path.mkdir()
    (tmp_path / "core.1234").write_bytes(b"\x7fELF")
    (tmp_path / "score.txt").write_text("not a core")
    assert core_dumps([tmp_path]) == [tmp_path / "core.1234"]
    assert session_leaks(tmp_path, None)[str(tmp_path / "core.1234")] == ["a core dump"]
