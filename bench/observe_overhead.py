"""What the observability layer costs an OCSP answer, measured in-process (no sockets, no TLS).

End-to-end OCSP throughput on a shared machine moves by ±50 % between runs; this isolates the
layer by driving the ASGI stack directly, the variants interleaved so that load drifts hit all
of them alike:

- ``bare``: the OCSP fast path with the answer counter switched off (the code before ADR 0016);
- ``counted``: the fast path as shipped (answer status read from the DER, counter incremented);
- ``observed``: ``Observe`` around it, as served (request id, latency histogram, header).

    PYTHONPATH=src:. python -m bench.observe_overhead --entries 100000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.revocation import bulk_insert, cert_serials, ocsp_requests, setup_workspace

Asgi = Callable[[Any, Any, Any], Any]


async def drive(app: Asgi, requests: list[bytes]) -> float:
    """Seconds per answer over ``requests``."""
    start = time.perf_counter()
    for body in requests:
        sent = False

        async def receive(body: bytes = body) -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(_message: dict[str, Any]) -> None:
            return None

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/ocsp",
            "headers": [(b"content-type", b"application/ocsp-request")],
            "client": ("127.0.0.1", 5000),
        }
        sent = False
        await app(scope, receive, send)
    return (time.perf_counter() - start) / len(requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--answers", type=int, default=3000, help="answers per variant and round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    from birthright.observability import metrics
    from birthright.observability.http import Observe
    from birthright.server import status_asgi as routes
    from birthright.server.backend import build_backend
    from birthright.settings import load_settings

    root = Path(tempfile.mkdtemp(prefix="birthright-observe-"))
    ws = root / "ws"
    url = f"sqlite:///{ws}/birthright.db"
    setup_workspace(ws, database_url=url)
    rng = random.Random(2026)
    every = cert_serials(args.entries + 100, rng)
    bulk_insert(url, every[: args.entries], every[args.entries :])
    backend = build_backend(load_settings(ws, database_url=url))
    asked = [int(s, 16) for s in rng.sample(every, 500)]
    requests = [ocsp_requests(ws, asked)[i % 500] for i in range(args.answers)]

    async def not_found(_scope: Any, _receive: Any, _send: Any) -> None:
        raise AssertionError("the fast path answers every OCSP request")

    fast = routes.OcspFastPath(not_found, revocation=backend.revocation)
    observed = Observe(fast)
    counted_answer = metrics.ocsp_answer
    counted_status = getattr(routes, "answer_status")  # noqa: B009 - patched below

    class _Off:
        def inc(self) -> None:
            return None

    def bare_mode(on: bool) -> None:
        setattr(metrics, "ocsp_answer", (lambda _s: _Off()) if on else counted_answer)  # noqa: B010
        setattr(routes, "answer_status", (lambda _d: "") if on else counted_status)  # noqa: B010

    variants: dict[str, tuple[Asgi, bool]] = {
        "bare": (fast, True),
        "counted": (fast, False),
        "observed": (observed, False),
    }
    best = {name: float("inf") for name in variants}
    asyncio.run(drive(observed, requests[:200]))  # warm the caches
    for _ in range(args.rounds):
        for name, (app, bare) in variants.items():
            bare_mode(bare)
            best[name] = min(best[name], asyncio.run(drive(app, requests)))
    bare_mode(False)
    backend.close()
    base = best["bare"]
    print(f"OCSP answer in-process, {args.entries:,} revoked, best of {args.rounds}:")
    for name, seconds in best.items():
        extra = (
            f"  (+{(seconds - base) * 1e6:.1f} µs, {seconds / base - 1:+.1%})"
            if name != "bare"
            else ""
        )
        print(f"  {name:9s} {seconds * 1e6:7.1f} µs/answer{extra}")


if __name__ == "__main__":
    main()
