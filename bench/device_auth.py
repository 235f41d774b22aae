"""Device authentications per second, next to ``cryptography``'s raw ECDSA verify rate.

The service's token path runs in process against a real database: parse the COSE_Sign1 token,
check times and audience, verify the chain to the factory root and the signature, read the
unit's status, consume the nonce (one write) and append the audit record (one write, on the
hash chain). Nonces are issued and tokens signed before the clock starts; the relying-service
path (offline checks only, no database) is measured too.

    python -m bench.device_auth [--units N] [--rounds N]

SQLite by default; PostgreSQL when ``BIRTHRIGHT_BENCH_DATABASE_URL`` is set.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from bench.attest import Bench, Unit, _signer, run_on_databases
from bench.common import Figure, figure


def _tokens(bench: Bench, units: list[Unit], rounds: int) -> list[tuple[bytes, list[bytes]]]:
    from birthright.deviceauth.token import build_token

    service = bench.backend.device_auth
    batch = []
    for _ in range(rounds):
        for serial, key, chain in units:
            nonce = service.challenge(serial).nonce
            token = build_token(
                nonce=nonce,
                serial=serial,
                audience=service.audience,
                now=datetime.now(UTC),
                sign=_signer(key),
            )
            batch.append((token, chain))
    return batch


def service_rate(bench: Bench, units: list[Unit], rounds: int) -> float:
    batch = _tokens(bench, units, rounds)
    service = bench.backend.device_auth
    start = time.perf_counter()
    for token, chain in batch:
        service.authenticate(token=token, chain=chain)
    return len(batch) / (time.perf_counter() - start)


def offline_rate(bench: Bench, units: list[Unit], rounds: int) -> float:
    from birthright.ca.authority import load_factory_ca
    from birthright.ca.verify import parse_chain
    from birthright.deviceauth.checks import check_offline
    from birthright.deviceauth.token import parse_token

    ca = load_factory_ca(bench.settings)
    batch = _tokens(bench, units, rounds)
    audience = bench.backend.device_auth.audience
    start = time.perf_counter()
    for token, chain in batch:
        now = datetime.now(UTC)
        check_offline(
            parse_token(token),
            parse_chain(chain),
            audience=audience,
            verify_chain=ca.verify_chain,
            now=now,
        )
    return len(batch) / (time.perf_counter() - start)


def measure_device_auth(
    bench: Bench, units: list[Unit], args: argparse.Namespace, tag: str, raw: Figure
) -> list[Figure]:
    return [
        figure(
            f"device authentications (service), {tag}",
            "authentications/s",
            lambda: service_rate(bench, units, args.rounds),
            runs=3,
            reference=("raw verify", raw.median),
            note="parse, times, audience, chain, signature, status, nonce consume, audit record",
        ),
        figure(
            f"device authentications (relying service, offline checks), {tag}",
            "authentications/s",
            lambda: offline_rate(bench, units, args.rounds),
            runs=3,
            reference=("raw verify", raw.median),
            note="parse, times, audience, chain, signature; no database",
        ),
    ]


if __name__ == "__main__":
    run_on_databases(__doc__.splitlines()[0], "device-auth", measure_device_auth)
