"""Report history over HTTP: generated, kept signed, listed, fetched; the daily schedule."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from birthright.ca.authority import FactoryCa
from birthright.cli.main import app
from birthright.db.engine import make_sessionmaker
from birthright.db.reconcile import ReconcileStore
from birthright.reconcile.manifests import parse_shipments
from birthright.reconcile.service import Schedule
from birthright.reconcile.signing import load_report_public_key, verify_report
from birthright.server.backend import build_backend
from birthright.settings import Settings
from tests.conftest import ServedBackend, ThreadServer, free_port
from tests.integration.test_reconcile import WO, Line, line, manifest

__all__ = ["line"]  # the fixture, used by name
runner = CliRunner()


def pdf_text(data: bytes, tmp_path: Path) -> str:
    if shutil.which("pdftotext") is None:
        if os.environ.get("CI"):
            pytest.fail("pdftotext is missing (Debian package poppler-utils)")
        pytest.skip("pdftotext is missing (Debian package poppler-utils)")
    path = tmp_path / "report.pdf"
    path.write_bytes(data)
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def day_with_exceptions(line: Line, served: ServedBackend) -> tuple[date, list[str]]:
    """Three units enrolled today; two shipped, plus one serial that was never enrolled."""
    today = datetime.now(UTC).date()
    serials = [line.enroll(f"CHIP-{i}") for i in range(3)]
    rows = [(serials[0], "C1"), (serials[1], "C1"), ("BRT-GHOST", "C1")]
    parsed = parse_shipments(io.BytesIO(manifest(rows, today.isoformat()).encode()))
    ReconcileStore(make_sessionmaker(served.backend.engine)).import_shipments(
        parsed, source_sha256="a" * 64, skip_bad=False, now=datetime.now(UTC)
    )
    return today, serials


def test_generated_reports_are_kept_signed_listed_and_served(
    served: ServedBackend,
    settings: Settings,
    day_with_exceptions: tuple[date, list[str]],
    tmp_path: Path,
) -> None:
    day, serials = day_with_exceptions
    kept = served.backend.reports.generate(day, trigger="cli")
    assert sorted(k.entry.format for k in kept) == ["csv", "html", "json", "pdf"]
    period = day.isoformat()
    key = load_report_public_key(settings)
    with httpx.Client(base_url=served.url, headers=served.auth, timeout=30) as http:
        listed = http.get("/v1/reports", params={"period": period}).json()["reports"]
        assert sorted(r["format"] for r in listed) == ["csv", "html", "json", "pdf"]
        for item in listed:
            body = http.get(item["url"])
            assert body.status_code == 200
            assert body.headers["x-report-sha256"] == item["sha256"]
            assert "default-src 'none'" in body.headers["content-security-policy"]
            signature = http.get(item["signature_url"]).content
            verify_report(key, body.content, signature)  # raises when it does not match

        report = http.get(f"/v1/reports/{period}/json").json()
        assert [e["serial"] for e in report["exceptions"]["enrolled_not_shipped"]] == [serials[2]]
        assert report["total"]["shipped_not_enrolled"] == 1

        pdf = http.get(f"/v1/reports/{period}/pdf")
        assert pdf.headers["content-type"] == "application/pdf"
        assert pdf.content.startswith(b"%PDF-")
        text = pdf_text(pdf.content, tmp_path)
        assert f"Reconciliation — {period}" in text
        assert serials[2] in text and "BRT-GHOST" in text
        assert "enrolled, not shipped" in text

        lst = http.get(f"/v1/reports/{period}/exceptions/shipped_not_enrolled.csv")
        assert lst.status_code == 200
        rows = list(csv.reader(io.StringIO(lst.text)))
        assert rows == [
            ["kind", "serial", "work_order", "detail"],
            ["shipped_not_enrolled", "BRT-GHOST", WO, ""],
        ]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        pytest.param("/v1/reports/2001-01-01/json", 404, "report_not_found", id="no-report"),
        pytest.param("/v1/reports/2001-01-01/json/signature", 404, "report_not_found", id="no-sig"),
        pytest.param("/v1/reports/2026-13-45/json", 400, "bad_period", id="impossible-day"),
        pytest.param("/v1/reports/yesterday/json", 422, "validation_error", id="not-a-day"),
        pytest.param("/v1/reports/2026-11-26/exe", 422, "validation_error", id="bad-format"),
        pytest.param(
            "/v1/reports/2026-11-26/exceptions/everything.csv",
            404,
            "exception_kind_unknown",
            id="bad-kind",
        ),
        pytest.param(
            "/v1/reports/2001-01-01/exceptions/foreign_chip.csv",
            404,
            "report_not_found",
            id="list-without-report",
        ),
        pytest.param("/v1/reports?period=2026-02-30", 400, "bad_period", id="bad-list-period"),
    ],
)
def test_missing_or_malformed_requests_get_a_json_error_with_a_stable_code(
    served: ServedBackend, path: str, status: int, code: str
) -> None:
    response = httpx.get(served.url + path, headers=served.auth, timeout=10)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


def test_the_cli_keeps_what_it_generates_and_lists_the_history(
    served: ServedBackend, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BIRTHRIGHT_DATABASE_URL", settings.effective_database_url)
    ws = str(settings.ws.root)
    out = tmp_path / "r.html"
    result = runner.invoke(
        app,
        [
            "report",
            "daily",
            "--date",
            "2026-11-20",
            "--format",
            "html",
            "--out",
            str(out),
            "-w",
            ws,
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "exceptions" / "foreign_chip.csv").exists()
    result = runner.invoke(app, ["report", "daily", "--all-time", "--format", "all", "-w", ws])
    assert result.exit_code == 0, result.output
    folder = settings.ws.root / "reports" / "all-time"
    assert sorted(p.name for p in folder.glob("reconciliation.*")) == [
        f"reconciliation.{f}{s}" for f in ("csv", "html", "json", "pdf") for s in ("", ".sig")
    ]
    result = runner.invoke(app, ["report", "history", "-w", ws])
    assert result.exit_code == 0, result.output
    assert "5 report(s)" in result.output
    assert "2026-11-20" in result.output and "all-time" in result.output
    listed = httpx.get(f"{served.url}/v1/reports", headers=served.auth, timeout=10).json()[
        "reports"
    ]
    assert [(r["period"], r["format"], r["trigger"]) for r in listed][-1] == (
        "2026-11-20",
        "html",
        "cli",
    )


@pytest.fixture
def scheduled(settings: Settings, factory_ca: FactoryCa) -> Iterator[ServedBackend]:
    """The service with the daily schedule on: due at 00:00 UTC, checked every 0.2 s."""
    backend = build_backend(settings, ca=factory_ca)
    schedule = Schedule(daily_at=datetime.min.time(), check_seconds=0.2)
    backend = dataclasses.replace(backend, report_schedule=schedule)
    port = free_port()
    server = ThreadServer(backend, port)
    server.start()
    try:
        yield ServedBackend(backend, f"http://127.0.0.1:{port}")
    finally:
        server.stop()
        backend.close()


def test_the_schedule_generates_yesterdays_report_once(scheduled: ServedBackend) -> None:
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    deadline = time.monotonic() + 60
    listed: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        listed = httpx.get(
            f"{scheduled.url}/v1/reports",
            params={"period": yesterday},
            headers=scheduled.auth,
            timeout=10,
        ).json()["reports"]
        if len(listed) == 4:
            break
        time.sleep(0.2)
    assert sorted(str(r["format"]) for r in listed) == ["csv", "html", "json", "pdf"]
    assert {r["trigger"] for r in listed} == {"schedule"}
    time.sleep(1.0)  # five more checks: the history says it is done
    again = httpx.get(f"{scheduled.url}/v1/reports", headers=scheduled.auth, timeout=10).json()[
        "reports"
    ]
    assert len(again) == 4
    body = json.loads(
        httpx.get(f"{scheduled.url}/v1/reports/{yesterday}/json", headers=scheduled.auth).content
    )
    assert body["period"] == yesterday
