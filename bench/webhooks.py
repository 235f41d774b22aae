"""Revoke → delivered: how long a subscribed relying service waits for a revocation event.

The service runs as ``birthright serve`` in a child process (its outbox dispatcher in the
lifespan, ADR 0012); a reference receiver (``birthright.relying.receiver``) listens on
127.0.0.1 and verifies each ES256 signature. Units are revoked one after another over HTTP;
each latency runs from sending ``POST /v1/revocations`` to the verified delivery.

    python -m bench.webhooks [--units N]

SQLite by default; PostgreSQL when ``BIRTHRIGHT_BENCH_DATABASE_URL`` is set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from bench.attest import Bench
from bench.common import Figure, free_port, print_table, record, service
from birthright.demo.console import demo_operator_token


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latencies(url: str, serials: list[str], token: str) -> tuple[list[float], list[float]]:
    """(revoke → delivered, revoke answered) in milliseconds, one per unit."""
    from birthright.relying.receiver import EventReceiver

    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=auth, timeout=30) as http:
        key = load_pem_public_key(http.get("/v1/event-signing-key").json()["public_key"].encode())
        assert isinstance(key, ec.EllipticCurvePublicKey)
        receiver = EventReceiver(key).start()
        try:
            body = {"url": receiver.url, "event_types": ["device.revoked"]}
            http.post("/v1/event-subscriptions", json=body).raise_for_status()
            delivered, answered = [], []
            for serial in serials:
                t0 = time.monotonic()
                r = http.post("/v1/revocations", json={"serial": serial, "reason": "superseded"})
                r.raise_for_status()
                answered.append((time.monotonic() - t0) * 1000)
                got = receiver.wait_for("device.revoked", serial, timeout=30)
                delivered.append((got.at - t0) * 1000)
        finally:
            receiver.stop()
    return delivered, answered


def _figure(name: str, values: list[float], note: str) -> Figure:
    p99 = _percentile(values, 0.99)
    return Figure(
        name,
        "ms",
        statistics.median(values),
        min(values),
        max(values),
        len(values),
        note=f"p99 {p99:.1f} ms; {note}",
    )


def main() -> None:
    from birthright.settings import write_settings_file

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=50)
    args = parser.parse_args()
    database_url = os.environ.get("BIRTHRIGHT_BENCH_DATABASE_URL")
    tag = "PostgreSQL" if database_url else "SQLite"
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
        bench = Bench(Path(tmp), database_url)
        try:
            serials = [bench.software_unit(i)[0] for i in range(args.units)]
            token = demo_operator_token(bench.backend.sessions)  # an admin for the script
        finally:
            bench.close()
        port = free_port()
        served = bench.settings.model_copy(update={"port": port})
        keys = ("tls", "station_auth", "port", *(("database_url",) if database_url else ()))
        write_settings_file(served, keys)
        with service(served.ws.root, port) as url:
            delivered, answered = latencies(url, serials, token)
    figures = [
        _figure(
            f"revoke → signed webhook delivered, {tag}",
            delivered,
            "POST /v1/revocations sent → receiver verified the ES256 delivery",
        ),
        _figure(f"revoke answered (outbox write included), {tag}", answered, "HTTP round trip"),
    ]
    print_table(figures)
    for f in figures:
        print(f"{f.name}: median {f.median:.1f} ms, {f.note}, max {f.maximum:.1f} ms")
    record(figures)


if __name__ == "__main__":
    main()
