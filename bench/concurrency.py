"""Many stations, several service processes, one PostgreSQL: throughput and latency percentiles,
with the invariants checked after every run (no duplicate serial, no quota overrun, every
acknowledged certificate recorded, nonces single-use across processes).

    BIRTHRIGHT_BENCH_DATABASE_URL=postgresql+psycopg://… python -m bench.concurrency \\
        --processes 3 --stations 60 --units 5

The database named is wiped (schema ``public`` dropped). Stations speak plain HTTP with
software-key CSRs made ahead of time: what is measured is the service and its database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import Engine
from tests.integration.burst import Outcome, check_invariants, run_station, seed

from bench.common import once, record, reset_postgres
from birthright.audit.signing import load_audit_public_key
from birthright.ca.authority import init_workspace_ca
from birthright.db.engine import make_engine
from birthright.db.migrate import upgrade
from birthright.settings import Settings, load_settings, write_settings_file

WO = "WO-CONC"


def reset_database(url: str) -> None:
    reset_postgres(url)
    upgrade(url)


def workspace(root: Path, url: str) -> Settings:
    settings = load_settings(
        root / "ws", database_url=url, tls=False, station_auth=False, report_schedule=False
    )
    settings.ws.create()
    write_settings_file(settings, ("database_url", "tls", "station_auth", "report_schedule"))
    init_workspace_ca(settings, now=datetime.now(UTC))
    return settings


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def services(settings: Settings, count: int, logs: Path) -> Iterator[list[str]]:
    """``count`` ``birthright serve`` processes on one workspace (one database)."""
    procs, urls = [], []
    try:
        for n in range(count):
            port = _free_port()
            with (logs / f"serve-{n}.log").open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "birthright.cli.main",
                            "serve",
                            "-w",
                            str(settings.workspace),
                            "--port",
                            str(port),
                            "--no-migrate",
                        ],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            _wait_healthy(url)
        yield urls
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=15)


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"service at {url} did not start")


@dataclass
class Run:
    outcomes: list[Outcome]
    answers: Counter[str]
    seconds: float

    @property
    def issued(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.acknowledged]

    def percentile(self, p: float) -> float:
        latencies = sorted(o.latency for o in self.issued)
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, round(p / 100 * (len(latencies) - 1)))]


def run_line(urls: list[str], stations: list[str], units: int) -> Run:
    """Every station in its own thread, station ``i`` talking to service ``i mod n``."""
    answers: Counter[str] = Counter()
    lock = threading.Lock()

    def check(status: int, body: dict[str, object]) -> None:
        with lock:
            answers[
                f"{status} {body.get('code', 'ok') if status >= 400 or not status else 'ok'}"
            ] += 1

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(stations)) as pool:
        runs = [
            pool.submit(
                run_station, urls[i % len(urls)], station=s, work_order=WO, units=units, check=check
            )
            for i, s in enumerate(stations)
        ]
        outcomes = [o for r in runs for o in r.result()]
    return Run(outcomes, answers, time.perf_counter() - start)


def nonce_race(urls: list[str], outcome: Outcome, tries: int) -> Counter[str]:
    """One nonce, one piece of evidence, ``tries`` presentations at once across all processes."""
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from birthright.attest.evidence import build_evidence

    if outcome.certificate is None or outcome.serial is None or outcome.key is None:
        raise ValueError("the nonce race needs an issued unit")
    chain = [outcome.certificate, *outcome.chain]
    r = httpx.post(f"{urls[0]}/v1/attestations/challenges", json={"serial": outcome.serial})
    nonce = str(r.json()["nonce"])
    evidence = build_evidence(nonce=nonce, serial=outcome.serial, now=datetime.now(UTC))
    body = {
        "evidence": base64.b64encode(evidence).decode(),
        "signature": base64.b64encode(
            outcome.key.sign(evidence, ec.ECDSA(hashes.SHA256()))
        ).decode(),
        "chain": chain,
    }
    barrier = threading.Barrier(tries)

    def present(i: int) -> str:
        barrier.wait()
        answer = httpx.post(f"{urls[i % len(urls)]}/v1/attestations", json=body, timeout=30).json()
        if answer.get("verdict") == "pass":
            return "pass"
        failed = sorted(c["id"] for c in answer.get("checks", []) if c.get("status") != "pass")
        return ",".join(failed) or str(answer.get("code"))

    with ThreadPoolExecutor(max_workers=tries) as pool:
        return Counter(pool.map(present, range(tries)))


def measure(url: str, *, processes: int, stations: int, units: int, cap: int) -> dict[str, object]:
    reset_database(url)
    with tempfile.TemporaryDirectory(prefix="birthright-conc-") as tmp:
        root = Path(tmp)
        settings = workspace(root, url)
        engine: Engine = make_engine(url)
        ids = seed(engine, stations=stations, work_order=WO, quantity=cap)
        with services(settings, processes, root) as urls:
            run = run_line(urls, ids, units)
            key = load_audit_public_key(settings)
            counts = check_invariants(engine, run.outcomes, cap=cap, audit_key=key)
            race = nonce_race(urls, run.issued[0], tries=4 * processes) if run.issued else Counter()
        engine.dispose()
    return {
        "processes": processes,
        "stations": stations,
        "issued": counts["devices"],
        "cap": cap,
        "answers": dict(run.answers),
        "seconds": run.seconds,
        "enrollments_per_s": len(run.issued) / run.seconds,
        "p50_ms": 1000 * run.percentile(50),
        "p95_ms": 1000 * run.percentile(95),
        "p99_ms": 1000 * run.percentile(99),
        "mean_ms": 1000 * statistics.fmean(o.latency for o in run.issued) if run.issued else 0.0,
        "nonce_race": dict(race),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--stations", type=int, default=60)
    parser.add_argument("--units", type=int, default=5, help="units each station tries")
    parser.add_argument("--cap", type=int, default=0, help="work-order quantity (0: all units)")
    args = parser.parse_args()
    url = os.environ.get("BIRTHRIGHT_BENCH_DATABASE_URL", "")
    if not url:
        print("bench.concurrency: set BIRTHRIGHT_BENCH_DATABASE_URL to a PostgreSQL to wipe")
        return
    result = measure(
        url,
        processes=args.processes,
        stations=args.stations,
        units=args.units,
        cap=args.cap or args.stations * args.units,
    )
    for key, value in result.items():
        print(f"{key:>18}: {value:,.1f}" if isinstance(value, float) else f"{key:>18}: {value}")
    where = f"{args.processes} service processes × {args.stations} stations, PostgreSQL"
    record(
        [
            once(
                f"concurrent enrollments/s, {where}", "enrollments/s", result["enrollments_per_s"]
            ),
            once(f"concurrent enrollment latency p50, {where}", "ms", result["p50_ms"]),
            once(f"concurrent enrollment latency p99, {where}", "ms", result["p99_ms"]),
        ]
    )


if __name__ == "__main__":
    main()
