"""`birthright entitlement transfer|list` on a real workspace (SQLite), after a claim over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.cli_workspace import served_cli_workspace
from tests.integration.test_attestation_api import make_unit
from tests.integration.test_ca_cli import cli
from tests.integration.test_entitlements_api import claim_body


@pytest.fixture
def claimed(tmp_path: Path) -> Iterator[tuple[Path, str, httpx.Client]]:
    """A workspace with one claimed unit; the owner's transfer secret in ``secret.txt``."""
    ws = tmp_path / "ws"
    with served_cli_workspace(ws) as api:
        unit = make_unit(api, "CHIP-CLI")
        r = api.post("/v1/entitlements/claims", json=claim_body(unit, api))
        assert r.status_code == 201, r.text
        (tmp_path / "secret.txt").write_text(r.json()["transfer_secret"])
        yield ws, unit.serial, api


def test_transfer_and_list_from_the_command_line(claimed: tuple[Path, str, httpx.Client]) -> None:
    ws, serial, api = claimed
    refused = cli(
        "entitlement",
        "transfer",
        serial,
        "warranty-2y",
        "--from",
        "acct:eve",
        "--to",
        "x",
        "--secret-file",
        ws.parent / "secret.txt",
        "-w",
        ws,
    )
    assert getattr(refused.exception, "code", None) == "entitlement_not_owner"
    r = cli(
        "entitlement", "transfer", serial, "warranty-2y",
        "--from", "acct:alice", "--to", "acct:bob", "--secret-file", ws.parent / "secret.txt",
        "-w", ws,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (ws.parent / "secret.txt").read_text().startswith("ets_")
    r = cli("entitlement", "list", "--owner", "acct:bob", "--json", "-w", ws)
    [row] = [json.loads(line) for line in r.output.splitlines()]
    assert (row["serial"], row["status"]) == (serial, "active")
    api.post("/v1/revocations", json={"serial": serial, "reason": "keyCompromise"})
    r = cli("entitlement", "list", "--serial", serial, "--json", "-w", ws)
    assert json.loads(r.output)["status"] == "suspended"
    assert cli("entitlement", "list", "-w", ws).exit_code != 0  # a query needs a filter
