"""Signed vendor manifests on the command line: verified chips in, tampered files refused whole
with only their audit record written, and the three-way report naming a foreign chip."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from birthright.cli.main import app
from birthright.demo.vendor import Vendor, make_vendor
from birthright.errors import BirthrightError
from birthright.settings import Settings
from tests.conftest import ServedBackend
from tests.integration.test_reconcile import Line, line

__all__ = ["line"]  # the fixture, used by name
runner = CliRunner()


@pytest.fixture
def ws(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("BIRTHRIGHT_DATABASE_URL", settings.effective_database_url)
    return str(settings.ws.root)


@pytest.fixture
def vendor(tmp_path: Path) -> tuple[Vendor, Path]:
    v = make_vendor(datetime.now(UTC))
    cert = tmp_path / "vendor.pem"
    cert.write_bytes(v.certificate_pem)
    return v, cert


def cli(*args: str) -> tuple[int, str]:
    """Exit code and output, with a domain error rendered as ``run_cli`` would (exit 2)."""
    result = runner.invoke(app, list(args))
    error = result.exception
    if isinstance(error, BirthrightError):
        return 2, f"{result.output}error [{error.code}] {error.message}"
    if error and not isinstance(error, SystemExit):
        raise error
    return result.exit_code, result.output


def write(path: Path, entries: list[Any]) -> Path:
    path.write_text(json.dumps(entries, indent=1))
    return path


def counts(served: ServedBackend) -> tuple[int, list[tuple[str, str, str | None]]]:
    with served.backend.engine.connect() as conn:
        chips = int(conn.execute(text("SELECT count(*) FROM chip_deliveries")).scalar_one())
        audit = [
            (str(r[0]), str(r[1]), r[2])
            for r in conn.execute(
                text(
                    "SELECT event, outcome, code FROM audit_events "
                    "WHERE event LIKE 'chips.%' ORDER BY seq"
                )
            )
        ]
    return chips, audit


def test_a_signed_manifest_makes_the_reconciliation_three_way(
    line: Line,
    served: ServedBackend,
    ws: str,
    vendor: tuple[Vendor, Path],
    tmp_path: Path,
) -> None:
    v, cert = vendor
    chips = [f"0123{i:014X}" for i in range(3)]
    serials = [line.enroll(chip) for chip in chips]
    manifest = write(tmp_path / "m.json", [v.entry(c) for c in chips[:2]])  # chip 3 is foreign
    code, out = cli(
        "chips", "import", str(manifest), "--microchip", "--signer", str(cert), "-w", ws
    )
    assert code == 0, out
    assert counts(served)[0] == 2
    code, out = cli("chips", "import", str(manifest), "--signer", str(cert), "-w", ws)
    assert code == 0, out  # idempotent: the same manifest adds nothing
    assert counts(served)[0] == 2
    out_file = tmp_path / "r.json"
    today = datetime.now(UTC).date().isoformat()
    code, out = cli("report", "daily", "--date", today, "--out", str(out_file), "-w", ws)
    assert code == 0, out
    foreign = json.loads(out_file.read_text())["exceptions"]["foreign_chip"]
    assert [(e["serial"], e["detail"]) for e in foreign] == [(serials[2], chips[2])]


def test_a_tampered_or_foreign_manifest_imports_nothing_but_its_audit_record(
    served: ServedBackend, ws: str, vendor: tuple[Vendor, Path], tmp_path: Path
) -> None:
    v, cert = vendor
    good = [v.entry(f"0123{i:014X}") for i in range(3)]
    tampered = json.loads(json.dumps(good))
    tampered[1]["payload"] = good[0]["payload"]  # entry 2 now claims entry 1's chip
    path = write(tmp_path / "t.json", tampered)
    code, out = cli("chips", "import", str(path), "--microchip", "--signer", str(cert), "-w", ws)
    assert code == 2
    # indent=1 puts each entry on 8 lines after the opening "[": entry 2 starts on line 10
    assert "[entry.signature_invalid] line 10: entry 2:" in out
    assert "nothing was imported" in out
    assert counts(served) == (0, [("chips.import", "refused", "manifest_rows_invalid")])

    impostor = make_vendor(datetime.now(UTC), "Impostor")
    foreign = write(tmp_path / "f.json", [impostor.entry("0123AA")])
    code, out = cli("chips", "import", str(foreign), "--signer", str(cert), "-w", ws)
    assert code == 2
    assert "entry.wrong_signer" in out

    broken = tmp_path / "b.json"
    broken.write_text('[\n{"payload": "x",\n "protected": ]')
    code, out = cli("chips", "import", str(broken), "--signer", str(cert), "-w", ws)
    assert code == 2
    assert "manifest_json" in out and "line 3" in out
    chips, audit = counts(served)
    assert chips == 0
    assert [a[2] for a in audit] == ["manifest_rows_invalid"] * 2 + ["manifest_json"]

    code, out = cli("chips", "import", str(path), "--signer", str(cert), "--skip-bad", "-w", ws)
    assert code == 0, out
    assert counts(served)[0] == 2
    assert counts(served)[1][-1] == ("chips.imported", "ok", None)


def test_microchip_needs_its_signer(ws: str, tmp_path: Path) -> None:
    path = write(tmp_path / "m.json", [])
    code, out = cli("chips", "import", str(path), "--microchip", "-w", ws)
    assert code == 2
    assert "signer_required" in out
