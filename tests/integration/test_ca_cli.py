"""`birthright ca init|show` run as a real console command, and the CA key files it writes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner, Result

from birthright.ca.keys import load_encrypted_key, write_encrypted_key
from birthright.cli.main import app as main_app
from birthright.errors import ConfigError
from birthright.settings import SOFTHSM2_MODULE
from tests.leakscan import ENCRYPTED_PEM_HEADER

CA_FILES = ("ca/root.pem", "ca/issuing.pem", "ca/root-key.pem", "ca/issuing-key.pem")
KEY_FILES = ("ca/root-key.pem", "ca/issuing-key.pem")


def _isolated_env() -> dict[str, str | None]:
    """Unset settings and SoftHSM2 variables from the outer environment; a wide terminal."""
    env: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith(("BIRTHRIGHT_", "SOFTHSM2"))
    }
    env["COLUMNS"] = "200"
    return env


def cli(*args: str | Path) -> Result:
    """Run the command in this process (fast); errors surface as ``result.exception``."""
    return CliRunner().invoke(main_app, [str(a) for a in args], env=_isolated_env())


def birthright(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the real console script in a child process (error rendering, exit codes, tokens)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BIRTHRIGHT_", "SOFTHSM2"))}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "birthright.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def flat(text: str) -> str:
    return " ".join(text.split())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ca_init_creates_the_hierarchy(tmp_path: Path) -> None:
    ws = tmp_path / "ws"

    done = cli("ca", "init", "--workspace", ws, "--organization", "Acme Devices")

    assert done.exit_code == 0, done.output
    for name in (*CA_FILES, "certs/root.pem", "certs/issuing.pem"):
        assert (ws / name).is_file(), name
    root = x509.load_pem_x509_certificate((ws / "ca/root.pem").read_bytes())
    assert root.subject.rfc4514_string() == "CN=Acme Devices Root CA,O=Acme Devices"
    assert (ws / "certs/root.pem").read_bytes() == (ws / "ca/root.pem").read_bytes()
    settings = tomllib.loads((ws / "birthright.toml").read_text())
    assert settings == {"ca_key_storage": "file", "organization": "Acme Devices"}


def test_ca_key_files_are_encrypted_and_private(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert cli("ca", "init", "-w", ws).exit_code == 0

    for name in KEY_FILES:
        pem = (ws / name).read_text()
        assert pem.startswith(ENCRYPTED_PEM_HEADER), name
        assert mode(ws / name) == 0o600, name
    for secret in (ws / "secrets").iterdir():
        assert mode(secret) == 0o600
        assert secret.read_text() not in (ws / "birthright.toml").read_text()
    assert mode(ws / "secrets") == 0o700


def test_second_init_without_force_is_refused(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert cli("ca", "init", "-w", ws).exit_code == 0
    before = (ws / "ca/root.pem").read_bytes()

    again = birthright("ca", "init", "-w", ws)

    assert again.returncode == 2
    assert "already holds a CA" in flat(again.stderr)
    assert "--force" in flat(again.stderr)
    assert (ws / "ca/root.pem").read_bytes() == before
    in_process = cli("ca", "init", "-w", ws)
    assert isinstance(in_process.exception, ConfigError)
    assert in_process.exception.code == "ca_exists"


def test_force_replaces_the_ca(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert cli("ca", "init", "-w", ws).exit_code == 0
    before = (ws / "ca/root.pem").read_bytes()

    done = cli("ca", "init", "-w", ws, "--force")

    assert done.exit_code == 0, done.output
    assert (ws / "ca/root.pem").read_bytes() != before
    assert (ws / "certs/root.pem").read_bytes() == (ws / "ca/root.pem").read_bytes()


def test_init_keeps_settings_already_in_the_workspace_file(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "birthright.toml").write_text('port = 9123\nproduct = "BR-CAM-2"\n')

    assert cli("ca", "init", "-w", ws, "--organization", "Acme").exit_code == 0

    settings = tomllib.loads((ws / "birthright.toml").read_text())
    assert settings == {
        "port": 9123,
        "product": "BR-CAM-2",
        "ca_key_storage": "file",
        "organization": "Acme",
    }


def test_ca_show_prints_subjects_storage_and_fingerprints(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert cli("ca", "init", "-w", ws, "--organization", "Acme").exit_code == 0
    root = x509.load_pem_x509_certificate((ws / "ca/root.pem").read_bytes())

    done = cli("ca", "show", "-w", ws)

    assert done.exit_code == 0, done.output
    out = flat(done.output)
    assert "CN=Acme Root CA,O=Acme" in out
    assert "CN=Acme Issuing CA,O=Acme" in out
    assert root.fingerprint(hashes.SHA256()).hex() in out
    assert "issuing key file" in out
    for secret in (ws / "secrets").iterdir():
        assert secret.read_text() not in done.output


def test_ca_show_without_a_ca_says_what_to_do(tmp_path: Path) -> None:
    done = birthright("ca", "show", "-w", tmp_path / "empty")
    assert done.returncode == 2
    assert "birthright ca init" in flat(done.stderr)


def test_invalid_key_storage_is_a_usage_error(tmp_path: Path) -> None:
    done = cli("ca", "init", "-w", tmp_path / "ws", "--key-storage", "floppy")
    assert done.exit_code == 2
    assert not (tmp_path / "ws" / "ca").exists()


@pytest.mark.skipif(
    not Path(SOFTHSM2_MODULE).exists() and not os.environ.get("CI"),
    reason="SoftHSM2 is not installed",
)
def test_ca_init_with_the_issuing_key_in_a_token(tmp_path: Path) -> None:
    ws = tmp_path / "ws"

    done = birthright("ca", "init", "-w", ws, "--key-storage", "pkcs11")

    assert done.returncode == 0, done.stderr
    assert (ws / "hsm/softhsm2.conf").is_file()
    assert not (ws / "ca/issuing-key.pem").exists()
    assert (ws / "ca/root-key.pem").read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY")
    assert tomllib.loads((ws / "birthright.toml").read_text())["ca_key_storage"] == "pkcs11"
    again = birthright("ca", "init", "-w", ws)
    assert again.returncode == 2
    assert "already holds a CA" in flat(again.stderr)
    show = birthright("ca", "show", "-w", ws)
    assert "issuing key pkcs11" in flat(show.stdout)
    assert "token 'birthright-ca'" in flat(show.stdout)
    for secret in ("ca-pin", "ca-so-pin", "ca-root-passphrase"):
        value = (ws / "secrets" / secret).read_text()
        assert value not in done.stdout + done.stderr + show.stdout + show.stderr

    back = birthright("ca", "init", "-w", ws, "--key-storage", "file", "--force")

    assert back.returncode == 0, back.stderr
    assert not (ws / "hsm/tokens").exists()  # the old token store is gone with the old key
    assert (ws / "ca/issuing-key.pem").is_file()


# -- key files ------------------------------------------------------------------------------


def test_encrypted_key_round_trips(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "k.pem"

    write_encrypted_key(key, path, "correct horse")

    assert mode(path) == 0o600
    assert path.read_text().startswith(ENCRYPTED_PEM_HEADER)
    assert load_encrypted_key(path, "correct horse").private_numbers() == key.private_numbers()


def test_rewriting_a_key_file_keeps_it_private(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_text("old")
    path.chmod(0o644)

    write_encrypted_key(ec.generate_private_key(ec.SECP256R1()), path, "pw-1")

    assert mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["k.pem"]  # no temporary left behind


def test_wrong_passphrase_is_a_clear_config_error_without_the_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    write_encrypted_key(ec.generate_private_key(ec.SECP256R1()), path, "the-right-one")

    with pytest.raises(ConfigError) as e:
        load_encrypted_key(path, "s3cr3t-wrong-guess")

    assert e.value.code == "ca_passphrase_wrong"
    assert "passphrase is wrong" in e.value.message
    assert "s3cr3t-wrong-guess" not in str(e.value)
    assert "the-right-one" not in str(e.value)


@pytest.mark.parametrize(
    ("content", "code"),
    [
        pytest.param(None, "ca_key_missing", id="missing"),
        pytest.param(b"garbage", "ca_passphrase_wrong", id="not-a-key"),
    ],
)
def test_unusable_key_files(tmp_path: Path, content: bytes | None, code: str) -> None:
    path = tmp_path / "k.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as e:
        load_encrypted_key(path, "pw")
    assert e.value.code == code


def test_a_plaintext_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ConfigError) as e:
        load_encrypted_key(path, "pw")
    assert e.value.code == "ca_key_unencrypted"
