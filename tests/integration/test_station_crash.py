"""Kill -9 the station at each step of a unit, restart it, and check nothing is lost or doubled.

The station runs as its own process (as on the line) against the real service on 127.0.0.1;
its chips are real SoftHSM2 tokens in a private configuration of their own.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from birthright.db.audit import verify_audit_log
from birthright.db.engine import make_sessionmaker
from birthright.server.backend import build_backend
from birthright.settings import Settings
from tests.conftest import ServedBackend, ThreadServer, seed_line

STATION = "st-crash"
WO = "WO-CRASH"
UNITS = 3
PIN = "crash-test-pin-1234"


def station_cmd(devices: Path, url: str, journal: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "birthright.cli.main",
        "station",
        "provision",
        "--devices",
        str(devices),
        "--server",
        url,
        "--station-id",
        STATION,
        "--work-order",
        WO,
        "--journal",
        str(journal),
    ]


@pytest.fixture
def devices(tmp_path: Path) -> Path:
    d = tmp_path / "devices"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "birthright.cli.main",
            "sim",
            "devices",
            "create",
            str(UNITS),
            "--dir",
            str(d),
            "--pin",
            PIN,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return d


def backend_rows(served: ServedBackend) -> dict[str, object]:
    with served.backend.engine.connect() as conn:
        return {
            "devices": conn.execute(text("SELECT count(*) FROM devices")).scalar_one(),
            "chips": conn.execute(text("SELECT count(DISTINCT chip_id) FROM devices")).scalar_one(),
            "minted": conn.execute(text("SELECT minted FROM work_orders")).scalar_one(),
            "serials": {
                r[0]: r[1] for r in conn.execute(text("SELECT chip_id, serial FROM devices"))
            },
        }


def journal_rows(path: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(path) as db:
        return {
            c: (step, serial)
            for c, step, serial in db.execute("SELECT chip_id, step, serial FROM units")
        }


@pytest.mark.parametrize("step", ["reserved", "key_generated", "enrolled", "stored"])
def test_station_killed_mid_unit_finishes_on_restart_without_doubles(
    served: ServedBackend, devices: Path, tmp_path: Path, step: str
) -> None:
    seed_line(served, station_id=STATION, work_order_id=WO, quantity=UNITS)
    journal = tmp_path / "journal.db"
    env = {**os.environ, "BIRTHRIGHT_DEVICE_PIN": PIN}
    killed = subprocess.run(
        station_cmd(devices, served.url, journal),
        env={**env, "BIRTHRIGHT_FAULT_KILL_AT": f"{step}:1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert journal_rows(journal)[next(iter(sorted(journal_rows(journal))))]  # journal survived
    again = subprocess.run(
        station_cmd(devices, served.url, journal),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    rows = backend_rows(served)
    assert (rows["devices"], rows["chips"], rows["minted"]) == (UNITS, UNITS, UNITS)
    book = journal_rows(journal)
    assert {c: s for c, (_step, s) in book.items()} == rows["serials"]
    assert {step for step, _serial in book.values()} == {"done"}
    assert verify_audit_log(make_sessionmaker(served.backend.engine), None).ok
    attest = subprocess.run(
        [
            sys.executable,
            "-m",
            "birthright.cli.main",
            "device",
            "attest",
            "--devices",
            str(devices),
            "--server",
            served.url,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert attest.returncode == 0, attest.stdout + attest.stderr


@pytest.fixture
def late_backend(settings: Settings, factory_ca: object) -> Iterator[ThreadServer]:
    backend = build_backend(settings, ca=factory_ca)  # type: ignore[arg-type]
    server = ThreadServer(backend, settings.port)
    try:
        yield server
    finally:
        server.stop()
        backend.close()


def test_the_line_stops_while_the_backend_is_away_and_resumes_when_it_returns(
    settings: Settings, late_backend: ThreadServer, devices: Path, tmp_path: Path
) -> None:
    served = ServedBackend(
        late_backend.server.config.app.state.backend,  # type: ignore[union-attr]
        f"http://127.0.0.1:{settings.port}",
    )
    seed_line(served, station_id=STATION, work_order_id=WO, quantity=UNITS)
    station = subprocess.Popen(
        station_cmd(devices, served.url, tmp_path / "journal.db"),
        env={**os.environ, "BIRTHRIGHT_DEVICE_PIN": PIN, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert station.stdout is not None
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the station finds nobody at the backend's address
        line = station.stdout.readline()
        seen.append(line)
        if "line stopped" in line or not line:
            break
    assert "line stopped" in "".join(seen), "".join(seen)
    assert station.poll() is None, "the station must wait, not exit"
    assert backend_rows(served)["devices"] == 0
    late_backend.start()
    out, _ = station.communicate(timeout=120)
    assert station.returncode == 0, "".join(seen) + out
    assert backend_rows(served)["devices"] == UNITS
