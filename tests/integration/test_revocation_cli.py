"""`birthright revocation|recall|crl` on a real workspace (SQLite) with units enrolled over HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.integration.cli_workspace import served_cli_workspace
from tests.integration.test_ca_cli import cli, flat
from tests.integration.test_revocation_api import make_unit


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """A CLI-made workspace (CA + schema) and three units enrolled through its server."""
    ws = tmp_path / "ws"
    with served_cli_workspace(ws) as api:
        yield ws, [make_unit(api, f"CHIP-{i}").serial for i in range(3)]


def test_revoke_hold_release_recall_and_crl_from_the_command_line(
    workspace: tuple[Path, list[str]], tmp_path: Path
) -> None:
    ws, (first, second, third) = workspace
    r = cli("revocation", "revoke", first, "--reason", "keyCompromise", "-w", ws)
    assert r.exit_code == 0, r.output
    assert "revoked" in r.output
    assert (
        cli("revocation", "revoke", second, "--reason", "certificateHold", "-w", ws).exit_code == 0
    )
    assert "on_hold" in cli("revocation", "status", second, "-w", ws).output
    assert cli("revocation", "release", second, "-w", ws).exit_code == 0
    refused = cli("revocation", "release", first, "-w", ws)
    assert refused.exit_code != 0
    assert getattr(refused.exception, "code", None) == "revocation_final"

    r = cli("recall", "preview", "--serial-range", f"{second}..{third}", "-w", ws)
    assert r.exit_code == 0, r.output
    found = re.search(r"recall execute (\S+)", flat(r.output))
    assert found is not None
    r = cli("recall", "execute", found.group(1), "-w", ws)
    assert r.exit_code == 0, r.output
    assert "2 units" in r.output

    out = tmp_path / "crl.pem"
    r = cli("crl", "--out", out, "--pem", "-w", ws)
    assert r.exit_code == 0, r.output
    crl = x509.load_pem_x509_crl(out.read_bytes())
    assert len(list(crl)) == 3


def test_events_subscribe_list_deliveries_unsubscribe(
    workspace: tuple[Path, list[str]],
) -> None:
    ws, serials = workspace
    done = cli("events", "subscribe", "http://127.0.0.1:9/fleet", "-t", "device.revoked",
               "-t", "recall.executed", "-w", ws)  # fmt: skip
    assert done.exit_code == 0, done.output
    sub = done.output.split()[0]
    assert re.fullmatch(r"sub_[0-9a-f]{16}", sub)
    listed = cli("events", "list", "--json", "-w", ws)
    assert '"event_types": ["device.revoked", "recall.executed"]' in listed.output
    assert cli("revocation", "revoke", serials[0], "-w", ws).exit_code == 0
    owed = cli("events", "deliveries", sub, "-w", ws)
    assert owed.exit_code == 0 and "device.revoked" in flat(owed.output)
    bad = cli("events", "subscribe", "ftp://x", "-t", "device.revoked", "-w", ws)
    assert getattr(bad.exception, "code", None) == "subscription_invalid"
    unknown = cli("events", "subscribe", "https://x.example", "-t", "device.exploded", "-w", ws)
    assert getattr(unknown.exception, "code", None) == "event_type_unknown"
    assert cli("events", "unsubscribe", sub, "-w", ws).exit_code == 0
    assert sub not in cli("events", "list", "-w", ws).output
    assert cli("events", "key", "-w", ws).output.startswith("-----BEGIN PUBLIC KEY-----")
