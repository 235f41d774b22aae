"""Reconciliation end to end: units enrolled over HTTP, manifests imported, signed reports."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text
from typer.testing import CliRunner

from birthright.cli.main import app
from birthright.db.engine import make_sessionmaker
from birthright.db.reconcile import ImportResult, ReconcileStore
from birthright.reconcile.manifests import ManifestRowsInvalid, parse_shipments
from birthright.reconcile.render import to_csv, to_html, to_json
from birthright.reconcile.report import Report, assemble
from birthright.settings import Settings
from tests.conftest import ServedBackend, seed_line
from tests.integration.test_enrollment_api import csr_b64

STATION, WO = "st-r", "WO-R"
HEADER = "serial,work_order,ship_date,carton,pallet,destination\n"
runner = CliRunner()


class Line:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def enroll(self, chip: str) -> str:
        r = self.client.post(
            "/v1/serials", json={"station_id": STATION, "work_order_id": WO, "chip_id": chip}
        )
        assert r.status_code == 200, r.text
        serial = str(r.json()["serial"])
        r = self.client.post("/v1/enrollments", json=self._body(serial, chip))
        assert r.status_code == 201, r.text
        return serial

    def refused(self, serial: str, chip: str) -> None:
        r = self.client.post("/v1/enrollments", json=self._body(serial, chip))
        assert r.status_code == 409, r.text

    @staticmethod
    def _body(serial: str, chip: str) -> dict[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        return {
            "station_id": STATION,
            "work_order_id": WO,
            "serial": serial,
            "chip_id": chip,
            "csr": csr_b64(key),
        }


@pytest.fixture
def line(served: ServedBackend) -> Iterator[Line]:
    seed_line(served, station_id=STATION, work_order_id=WO, quantity=20)
    with httpx.Client(base_url=served.url, headers=served.auth, timeout=10) as client:
        yield Line(client)


@pytest.fixture
def store(served: ServedBackend) -> ReconcileStore:
    return ReconcileStore(make_sessionmaker(served.backend.engine))


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BIRTHRIGHT_DATABASE_URL", settings.effective_database_url)
    return settings.ws.root


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def manifest(rows: list[tuple[str, str]], day: str, wo: str = WO) -> str:
    return HEADER + "".join(f"{s},{wo},{day},{c},PAL-1,Rotterdam\n" for s, c in rows)


def shipment_count(served: ServedBackend) -> int:
    with served.backend.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM shipments")).scalar_one())


def test_the_report_names_exactly_the_overrun_missing_double_and_foreign_units(
    line: Line, served: ServedBackend, cli_env: Path, tmp_path: Path
) -> None:
    today = datetime.now(UTC).date().isoformat()
    s1, s2, s3, s4, s5 = (line.enroll(f"CHIP-{i}") for i in range(1, 6))
    line.refused(s1, "CHIP-1")  # serial already enrolled
    chips = tmp_path / "chips.csv"
    chips.write_text(
        "vendor,chip_id,delivered_at\n"
        + "".join(f"Microchip,CHIP-{i},2026-11-01\n" for i in (1, 2, 3, 4, 99))
    )
    ships = tmp_path / "ship.csv"
    rows = [(s1, "C1"), (s2, "C1"), (s3, "C1"), (s3, "C2"), (s5, "C2"), ("BRT-GHOST", "C2")]
    ships.write_text(manifest(rows, today))
    assert cli("chips", "import", str(chips), "-w", str(cli_env))[0] == 0
    code, out = cli("shipments", "import", str(ships), "-w", str(cli_env))
    assert code == 0, out

    out_file = tmp_path / "report.json"
    code, out = cli("report", "daily", "--date", today, "--out", str(out_file), "-w", str(cli_env))
    assert code == 0, out
    body = json.loads(out_file.read_bytes())
    serials = {k: [e["serial"] for e in v] for k, v in body["exceptions"].items()}
    assert serials == {
        "enrolled_not_shipped": [s4],
        "shipped_not_enrolled": ["BRT-GHOST"],
        "shipped_twice": [s3],
        "foreign_chip": [s5],
    }
    assert body["exceptions"]["foreign_chip"][0]["detail"] == "CHIP-5"
    (order,) = body["work_orders"]
    assert (order["name"], order["ordered"], order["minted"], order["shipped"]) == (WO, 20, 5, 5)
    assert order["minted_beyond_order"] == 0
    assert body["total"]["shipped_not_enrolled"] == 1
    assert body["lines"][0]["name"] == "site1/line1"
    assert body["refused_enrollments_by_code"] == {"serial_enrolled": 1}
    assert sum(h["count"] for h in body["minted_per_hour"]) == 5

    code, out = cli("report", "verify", str(out_file), "-w", str(cli_env))
    assert code == 0, out
    assert "valid" in out
    data = bytearray(out_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    out_file.write_bytes(bytes(data))
    code, out = cli("report", "verify", str(out_file), "-w", str(cli_env))
    assert code == 1
    assert "changed after signing" in out

    for fmt in ("csv", "html"):
        path = tmp_path / f"report.{fmt}"
        code, out = cli(
            "report", "daily", "--all-time", "--format", fmt, "--out", str(path), "-w", str(cli_env)
        )
        assert code == 0, out
        assert (
            cli("report", "verify", str(path), "--sig", f"{path}.sig", "-w", str(cli_env))[0] == 0
        )
    csv_rows = list(csv.reader(io.StringIO((tmp_path / "report.csv").read_text())))
    assert ["shipped_twice", s3, "", "", WO, "detail", "2"] in csv_rows
    page = (tmp_path / "report.html").read_text()
    assert s4 in page and "CHIP-5" in page and "<svg" in page


def test_import_is_idempotent_and_all_or_nothing(
    line: Line, served: ServedBackend, store: ReconcileStore
) -> None:
    serial = line.enroll("CHIP-1")
    good = manifest([(serial, "C1"), ("BRT-X", "C1")], "2026-11-26")
    now = datetime.now(UTC)

    def load(text_: str, skip_bad: bool = False) -> ImportResult:
        parsed = parse_shipments(io.BytesIO(text_.encode()))
        return store.import_shipments(parsed, source_sha256="f" * 64, skip_bad=skip_bad, now=now)

    first = load(good)
    assert (first.added, first.already_present) == (2, 0)
    again = load(good)
    assert (again.added, again.already_present) == (0, 2)
    assert shipment_count(served) == 2

    bad = good.replace("C1", "C7") + "BRT-Y,WO-NOPE,2026-11-26,C1,P,X\nBRT-Z,WO-R,soon,C,P,X\n"
    with pytest.raises(ManifestRowsInvalid) as refused:
        load(bad)
    assert [(e.line, e.reason) for e in refused.value.errors] == [
        (4, "unknown work order 'WO-NOPE'"),
        (5, "ship_date 'soon' is not an ISO date (YYYY-MM-DD)"),
    ]
    assert shipment_count(served) == 2
    partial = load(bad, skip_bad=True)
    assert (partial.added, len(partial.skipped)) == (2, 2)
    assert shipment_count(served) == 4


def test_a_bad_file_on_the_command_line_imports_nothing(
    line: Line, served: ServedBackend, cli_env: Path, tmp_path: Path
) -> None:
    path = tmp_path / "m.csv"
    path.write_text(manifest([("S1", "C1")], "2026-11-26") + "S2,WO-R,2026-11-26,C1\n")
    code, out = cli("shipments", "import", str(path), "-w", str(cli_env))
    assert code == 2
    assert "line 3" in out and "nothing was imported" in out
    assert shipment_count(served) == 0
    code, out = cli("shipments", "import", str(path), "--skip-bad", "-w", str(cli_env))
    assert code == 0, out
    assert shipment_count(served) == 1


def test_html_caps_long_lists_and_escapes_everything(store: ReconcileStore, line: Line) -> None:
    for i in range(5):
        line.enroll(f"CHIP-{i}")
    hostile = manifest([("<script>alert(1)</script>", "C1"), ("=HYPERLINK(1)", "C1")], "2026-11-26")
    parsed = parse_shipments(io.BytesIO(hostile.encode()))
    store.import_shipments(parsed, source_sha256="e" * 64, skip_bad=False, now=datetime.now(UTC))
    report: Report = assemble(store.figures(None), day=None, now=datetime.now(UTC))
    page = to_html(report, cap=3).decode()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "and 2 more" in page
    assert len(json.loads(to_json(report))["exceptions"]["foreign_chip"]) == 5
    table = to_csv(report).decode()
    assert table.count("\nforeign_chip,") == 5
    assert "'=HYPERLINK(1)" in table
