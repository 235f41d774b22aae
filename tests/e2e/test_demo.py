"""`birthright demo` as a user runs it: a subprocess on a fresh workspace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.leakscan import scan_tree


def test_demo_provisions_attests_and_exports_verifiable_certificates(tmp_path: Path) -> None:
    ws = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, "-m", "birthright.cli.main", "demo", "--workspace", str(ws), "-n", "4"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 ok, 0 failed" in run.stdout
    assert "3/4 pass; blocked firmware 1.3.9" in run.stdout
    assert "4/4 enrolled units" in run.stdout  # every key proven genuine
    assert "refused (se_not_genuine)" in run.stdout
    assert "3 PKCS#11 (SoftHSM2), 1 TPM 2.0" in run.stdout
    assert "(3 PKCS#11, 1 TPM)" in run.stdout  # the TPM proved its EK and AK
    assert "opened by its unit (pkcs11, tpm); another unit → seal_refused" in run.stdout
    assert "1/1 valid" in run.stdout  # its firmware claim carried a valid PCR quote
    assert "/readyz: ready;" in run.stdout  # and the metrics counted what the service did
    assert "ready; 4 issued; refused" in run.stdout
    assert "key_shared 1" in run.stdout
    assert "OCSP says revoked (serve-status: revoked)" in " ".join(run.stdout.split())
    flat = " ".join(run.stdout.split())
    assert "got device.revoked for" in flat  # pushed to a subscriber, signature verified
    assert "and the recall's 2 serial(s) in 1 event" in flat
    assert "traded its factory identity for an operational certificate" in flat
    assert "the revoked unit → device_revoked" in flat
    devices = sorted((ws / "certs" / "devices").glob("*.pem"))
    assert "2 enrolled / BRSE00000001 re-keyed" in run.stdout  # EST, a second product
    assert "…00000002 refused (policy_hook_refused: serials ending" in run.stdout
    assert len(devices) == 6  # 4 provisioned units + 2 EST-enrolled hubs
    verify = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(ws / "certs" / "root.pem"),
            "-untrusted",
            str(ws / "certs" / "issuing.pem"),
            *map(str, devices),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.count(": OK") == 6
    # The service must stop with the demo; the workspace then serves again.
    secrets = [(ws / "secrets" / n).read_text() for n in ("device-pin", "ca-passphrase")]
    leaks = scan_tree(ws, secrets, skip=[ws / "secrets", ws / "devices"])
    assert leaks == {}


def test_demo_refuses_to_overwrite_a_workspace_without_reset(tmp_path: Path) -> None:
    ws = tmp_path / "demo"
    ws.mkdir()
    (ws / "birthright.toml").write_text("port = 1\n")
    run = subprocess.run(
        [sys.executable, "-m", "birthright.cli.main", "demo", "--workspace", str(ws), "-n", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert "workspace_exists" in run.stderr
    assert (ws / "birthright.toml").read_text() == "port = 1\n"
