"""Enrollment latency added by a product's policy hook (ADR 0015).

In process, SQLite file: ``EnrollmentService`` reserve + enroll of one unit (software-key CSR
made ahead of time), without a hook and with the reference hook on 127.0.0.1 (one HTTP POST,
its ECDSA-signed answer verified). Median per-unit latency over ``--units``; the difference is
what the hook costs: connection, JSON, the hook's signature and our verification.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bench.common import Figure, figure, print_table, record
from bench.enroll import make_csrs


def _latency_ms(root: Path, csrs: list[bytes], *, hooked: bool) -> float:
    from birthright.ca.authority import init_workspace_ca
    from birthright.db.engine import make_engine, make_sessionmaker
    from birthright.db.migrate import upgrade
    from birthright.db.operations import Operations, WorkOrders
    from birthright.db.policy_hooks import SqlPolicyHooks
    from birthright.db.repository import SqlEnrollmentStore
    from birthright.enrollment.model import EnrollmentRequest, WorkOrderSpec
    from birthright.enrollment.service import EnrollmentService
    from birthright.policyhook.gate import PolicyGate
    from birthright.policyhook.http import HttpHookTransport
    from birthright.policyhook.reference import ReferenceHook
    from birthright.settings import load_settings
    from birthright.types import ChipId, StationId

    ws = Path(tempfile.mkdtemp(dir=root))
    settings = load_settings(ws)
    settings.ws.create()
    upgrade(settings.effective_database_url)
    now = datetime.now(UTC)
    ca = init_workspace_ca(settings, now=now)
    sessions = make_sessionmaker(make_engine(settings.effective_database_url))
    Operations(sessions).register_station("bench-st", site="s1", line="l1", now=now)
    WorkOrders(sessions).open(
        WorkOrderSpec(
            "WO-B",
            "P",
            "s1",
            "l1",
            len(csrs),
            "B",
            1,
            len(csrs),
            now - timedelta(minutes=1),
            now + timedelta(days=1),
        ),
        now=now,
    )
    hooks = SqlPolicyHooks(sessions)
    hook = ReferenceHook(ec.generate_private_key(ec.SECP256R1())).start() if hooked else None
    if hook is not None:
        pem = hook.key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        hooks.set("P", url=hook.url, public_key_pem=pem, timeout_ms=1000, now=now)
    service = EnrollmentService(
        store=SqlEnrollmentStore(sessions),
        issuer=ca,
        clock=lambda: datetime.now(UTC),
        policy_gate=PolicyGate(hooks=hooks, transport=HttpHookTransport(), clock=datetime.now),
    )
    station = StationId("bench-st")
    times = []
    try:
        for i, csr in enumerate(csrs):
            chip = ChipId(f"chip-{i}")
            t = time.perf_counter()
            r = service.reserve_serial(station, chip, "WO-B")
            service.enroll(EnrollmentRequest(station, "WO-B", r.serial, chip, csr))
            times.append(time.perf_counter() - t)
    finally:
        if hook is not None:
            hook.stop()
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    csrs = make_csrs(args.units)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        without = figure(
            "enroll_latency_no_hook_ms",
            "ms",
            lambda: _latency_ms(root, csrs, hooked=False),
            runs=args.runs,
            note="in process, SQLite, reserve + enroll of one unit",
        )
        with_hook = figure(
            "enroll_latency_policy_hook_ms",
            "ms",
            lambda: _latency_ms(root, csrs, hooked=True),
            runs=args.runs,
            reference=("enroll_latency_no_hook_ms", without.median),
            note="same, the product's hook asked over HTTP on 127.0.0.1 (signed answer)",
        )
    figures: list[Figure] = [without, with_hook]
    print_table(figures)
    print(f"added by the hook: {with_hook.median - without.median:.2f} ms per unit (median)")
    record(figures)


if __name__ == "__main__":
    main()
