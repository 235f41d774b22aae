"""Kill -9 the service process in the middle of a burst of enrollments, start it again, and
check the invariants: each chip at most one identity, each serial at most one certificate,
the quota counted exactly, every acknowledged certificate recorded, and the audit chain
verifying with ``birthright audit verify``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from birthright.audit.signing import load_audit_public_key
from birthright.ca.authority import init_workspace_ca
from birthright.db.engine import make_engine
from birthright.settings import Settings, write_settings_file
from tests.integration.burst import check_invariants, run_station, seed

STATIONS = 6
UNITS = 15
WO = "WO-KILL"


def start_service(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "birthright.cli.main",
                "serve",
                "-w",
                str(settings.workspace),
                "--port",
                str(settings.port),
                "--no-migrate",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{settings.port}/healthz", timeout=1).is_success:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the service did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)


#: Certificates issued before the kill; more points: BIRTHRIGHT_CRASH_POINTS=3,20,50.
KILL_POINTS = [int(n) for n in os.environ.get("BIRTHRIGHT_CRASH_POINTS", "20").split(",")]


@pytest.mark.parametrize("kill_after", KILL_POINTS, ids=lambda n: f"after-{n}-issued")
def test_service_killed_mid_burst_loses_and_doubles_nothing(
    settings: Settings, tmp_path: Path, kill_after: int
) -> None:
    """``kill_after``: certificates issued before the kill lands."""
    write_settings_file(settings, ("database_url", "tls", "station_auth", "port"))
    init_workspace_ca(settings, now=datetime.now(UTC))
    engine = make_engine(settings.effective_database_url)
    stations = seed(engine, stations=STATIONS, work_order=WO, quantity=STATIONS * UNITS)
    log = tmp_path / "serve.log"
    service = start_service(settings, log)
    seen: Counter[str] = Counter()

    def check(status: int, body: dict[str, object]) -> None:
        seen[f"{status} {body.get('code', 'ok') if status >= 400 or not status else 'ok'}"] += 1

    url = f"http://127.0.0.1:{settings.port}"
    try:
        with ThreadPoolExecutor(max_workers=STATIONS) as pool:
            runs = [
                pool.submit(run_station, url, station=s, work_order=WO, units=UNITS, check=check)
                for s in stations
            ]
            deadline = time.monotonic() + 60
            while seen["201 ok"] < kill_after and time.monotonic() < deadline:
                time.sleep(0.005)
            os.kill(service.pid, signal.SIGKILL)
            service.wait(timeout=10)
            time.sleep(0.5)  # the stations find nobody there and keep retrying
            service = start_service(settings, log)
            outcomes = [o for r in runs for o in r.result(timeout=300)]
    finally:
        service.terminate()
        service.wait(timeout=10)
    print(f"answers {dict(seen)}")
    assert seen["0 transport"] > 0, "the kill did not land during the burst"
    assert not [k for k in seen if k.startswith("5")], seen
    assert all(o.acknowledged for o in outcomes)
    key = load_audit_public_key(settings)
    counts = check_invariants(engine, outcomes, cap=STATIONS * UNITS, audit_key=key)
    engine.dispose()
    assert counts == {"devices": STATIONS * UNITS, "minted": STATIONS * UNITS}
    verify = subprocess.run(
        [
            sys.executable,
            "-m",
            "birthright.cli.main",
            "audit",
            "verify",
            "-w",
            str(settings.ws.root),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
