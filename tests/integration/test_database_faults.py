"""PostgreSQL faults during a burst of enrollments: connections killed under the service, the
server crashed and restarted. The service answers 503 ``db_unavailable`` (never a 500),
recovers without a restart of its own, and loses nothing it acknowledged."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from birthright.ca.authority import init_workspace_ca
from birthright.db.migrate import upgrade
from birthright.settings import Settings, load_settings
from tests.conftest import ServedBackend, free_port, serve_backend
from tests.integration.burst import Outcome, check_invariants, run_station, seed
from tests.integration.pgserver import ThrowawayPostgres, pg_bin

STATIONS = 8
UNITS = 10
WO = "WO-FAULT"

pytestmark = pytest.mark.postgres


class Answers:
    """Every answer the stations got; the contract is checked as they arrive."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.broken: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, status: int, body: dict[str, object]) -> None:
        code = str(body.get("code", "ok")) if status >= 400 or status == 0 else "ok"
        with self._lock:
            self.seen[f"{status} {code}"] += 1
            if status >= 500 and (status, code) != (503, "db_unavailable"):
                self.broken.append(f"{status} {body}")


def serve_on(url: str, tmp_path: Path) -> Iterator[ServedBackend]:
    settings: Settings = load_settings(
        tmp_path / "ws", database_url=url, port=free_port(), tls=False, station_auth=False
    )
    settings.ws.create()
    ca = init_workspace_ca(settings, now=datetime.now(UTC))
    yield from serve_backend(settings, ca)


def burst(served: ServedBackend, answers: Answers, stations: list[str]) -> list[Outcome]:
    with ThreadPoolExecutor(max_workers=len(stations)) as pool:
        runs = [
            pool.submit(
                run_station, served.url, station=s, work_order=WO, units=UNITS, check=answers
            )
            for s in stations
        ]
        return [o for r in runs for o in r.result()]


@pytest.fixture
def on_shared_postgres(postgres_url: str, tmp_path: Path) -> Iterator[ServedBackend]:
    yield from serve_on(postgres_url, tmp_path)


def test_connections_killed_under_a_burst(on_shared_postgres: ServedBackend) -> None:
    served = on_shared_postgres
    stations = seed(served.backend.engine, stations=STATIONS, work_order=WO, quantity=200)
    answers = Answers()
    killed = 0
    done = threading.Event()

    def killer() -> None:
        nonlocal killed
        url = os.environ["BIRTHRIGHT_TEST_DATABASE_URL"].replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(url, autocommit=True) as conn:
            while not done.is_set():
                killed += len(
                    conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    ).fetchall()
                )
                time.sleep(0.15)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        outcomes = burst(served, answers, stations)
    finally:
        done.set()
        thread.join()
    print(f"killed {killed} connections; answers {dict(answers.seen)}")
    assert killed > 0
    assert answers.broken == [], "a dropped connection must be a 503, never a 500"
    assert all(o.acknowledged for o in outcomes), "every unit goes through once the DB is back"
    counts = check_invariants(served.backend.engine, outcomes, cap=200)
    assert counts["devices"] == STATIONS * UNITS


@pytest.fixture
def throwaway() -> Iterator[ThrowawayPostgres]:
    if pg_bin() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries are required in CI")
        pytest.skip("no PostgreSQL server binaries")
    # Outside pytest's own temporary folder: that one is private to us, and the server may
    # run as the system's postgres user.
    root = Path(tempfile.mkdtemp(prefix="birthright-pg-"))
    os.chmod(root, 0o755)  # noqa: S103 - the server's user must reach its data folder
    pg = ThrowawayPostgres(root / "pg", free_port())
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_postgresql_crashed_and_restarted_during_a_burst(
    throwaway: ThrowawayPostgres, tmp_path: Path
) -> None:
    upgrade(throwaway.url)
    for served in serve_on(throwaway.url, tmp_path):
        stations = seed(served.backend.engine, stations=STATIONS, work_order=WO, quantity=200)
        answers = Answers()
        with ThreadPoolExecutor(max_workers=1) as one:
            running = one.submit(burst, served, answers, stations)
            # Crash once the burst is under way, however fast the service is.
            deadline = time.monotonic() + 30
            while sum(answers.seen.values()) < 6 and time.monotonic() < deadline:
                time.sleep(0.01)
            throwaway.crash()
            try:
                with httpx.Client(base_url=served.url, headers=served.auth, timeout=10) as http:
                    r = http.get("/v1/devices/R1")
                time.sleep(1.0)
            finally:
                throwaway.start()
            outcomes = running.result(timeout=300)
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "db_unavailable"
        assert r.headers["Retry-After"] == "1"
        print(f"answers {dict(answers.seen)}")
        assert answers.broken == [], "a database away must be a 503, never a 500"
        assert answers.seen["503 db_unavailable"] > 0, "the burst never met the outage"
        assert all(o.acknowledged for o in outcomes), "the service recovered by itself"
        counts = check_invariants(served.backend.engine, outcomes, cap=200)
        assert counts["devices"] == STATIONS * UNITS
