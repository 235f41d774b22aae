"""Enrollments per second, end to end, against the raw one-core issuance limit.

End to end = station client → HTTP(S) (+ mTLS and a signed request when the station has an
identity) → CSR check → quota → issue → durable commit. CSRs are made ahead of time with
software keys: the secure element's own keygen and signing are not what is measured here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from bench import cfssl
from bench.common import (
    Figure,
    Started,
    cpu_seconds,
    figure,
    free_port,
    no_rate_limits,
    print_table,
    rate_of,
    record,
    reset_postgres,
    run_parallel,
    service_process,
)


def make_csrs(n: int) -> list[bytes]:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unit")])
    return [
        x509.CertificateSigningRequestBuilder()
        .subject_name(name)
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
        .public_bytes(Encoding.DER)
        for _ in range(n)
    ]


def raw_issuance_rate(csrs: list[bytes]) -> float:
    """``cryptography`` alone, one core: parse + verify the CSR, build + sign the cert."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")])
    now = datetime.now(UTC)
    start = time.perf_counter()
    for i, der in enumerate(csrs):
        csr = x509.load_der_x509_csr(der)
        assert csr.is_signature_valid
        (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, f"S{i}")]))
            .issuer_name(issuer)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
    return len(csrs) / (time.perf_counter() - start)


def setup_workspace(
    ws: Path, *, database_url: str, stations: int, quantity: int, softhsm: Path, tag: str
) -> list[Path]:
    """A workspace with the whole PKI, ``stations`` registered stations (keys in SoftHSM2
    tokens of one private configuration) and one work order; returns the station folders."""
    from birthright.ca.setup import init_workspace_pki
    from birthright.db.engine import make_engine, make_sessionmaker
    from birthright.db.migrate import upgrade
    from birthright.db.operations import WorkOrders
    from birthright.enrollment.model import WorkOrderSpec
    from birthright.se.pkcs11 import write_softhsm2_conf
    from birthright.settings import load_settings, write_settings_file
    from birthright.station.enroll_station import register_station_identity

    # No daily report at start-up: rendering its PDF would land in the timed runs. No rate
    # limits: one station at full speed passes its 100 requests/s, all share one address.
    limits = no_rate_limits()
    settings = load_settings(
        ws, database_url=database_url, port=free_port(), report_schedule=False, **limits
    )
    settings.ws.create()
    write_settings_file(settings, ("database_url", "port", "report_schedule", *limits))
    if database_url.startswith("postgresql"):
        reset_postgres(database_url)
    upgrade(settings.effective_database_url)
    now = datetime.now(UTC)
    init_workspace_pki(settings, now=now)
    sessions = make_sessionmaker(make_engine(settings.effective_database_url))
    if not (softhsm / "softhsm2.conf").exists():
        write_softhsm2_conf(softhsm / "softhsm2.conf", softhsm / "tokens")
    dirs = []
    for s in range(stations):
        d = ws / f"station-{s}"
        register_station_identity(
            settings,
            sessions,
            station_id=f"b-{tag}-{s}",
            site="s1",
            line="l1",
            station_dir=d,
            softhsm_dir=softhsm,
            now=now,
        )
        dirs.append(d)
    WorkOrders(sessions).open(
        WorkOrderSpec(
            "WO-BENCH",
            "BENCH",
            "s1",
            "l1",
            quantity,
            "B",
            1,
            quantity,
            now - timedelta(minutes=1),
            now + timedelta(days=1),
        ),
        now=now,
    )
    return dirs


def _station_process(
    started: Started, url: str, csrs: list[bytes], station_dir: Path, offset: int
) -> tuple[int, float, float, float]:
    """One station, as on the line: its own process, mTLS client, token key and counter."""
    from birthright.station.connect import station_client
    from birthright.station.identity import load_station_config

    station_id = load_station_config(station_dir).station_id
    ok = 0
    with started.setup:  # one at a time: SoftHSM2 token scans race
        client = station_client(station_dir, url)
        client.health()  # the TLS session is up before the clock starts
    with client:
        start = started.go()
        cpu = time.process_time()
        for i, csr in enumerate(csrs):
            chip = f"chip-{offset}-{station_id}-{i}"
            serial = client.reserve_serial(
                station_id=station_id, work_order_id="WO-BENCH", chip_id=chip
            )
            enrolled = client.enroll(
                station_id=station_id,
                work_order_id="WO-BENCH",
                serial=serial,
                chip_id=chip,
                csr_der=csr,
            )
            ok += enrolled.created
        return ok, start, time.time(), time.process_time() - cpu


def run_stations(
    url: str, csrs: list[bytes], station_dirs: list[Path], offset: int
) -> tuple[float, float]:
    """Each station runs in its own process (a factory has one station per PC) and enrolls
    its share; returns enrollments/s over the whole run and the stations' CPU seconds."""
    share = len(csrs) // len(station_dirs)
    jobs = [(url, csrs[s * share : (s + 1) * share], d, offset) for s, d in enumerate(station_dirs)]
    results = run_parallel(_station_process, jobs)
    return rate_of(results), sum(r[3] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, default=400, help="enrollments per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/birthright-bench"))
    args = parser.parse_args()
    shutil.rmtree(args.workdir / "hsm-stations", ignore_errors=True)
    csrs = make_csrs(args.units)
    raw = figure(
        "raw CSR verify + issue (cryptography, 1 core)",
        "certs/s",
        lambda: raw_issuance_rate(csrs),
        runs=args.runs,
    )
    figures: list[Figure] = [raw]
    peers: dict[int, float] = {}
    if cfssl.available():
        with cfssl.cfssl_serve(args.workdir / "cfssl") as cfssl_port:
            for clients in (1, 8):
                peer = figure(
                    f"cfssl serve sign API, {clients} client(s), HTTP",
                    "certs/s",
                    lambda c=clients: cfssl.sign_rate(cfssl_port, make_csrs(args.units), c),  # type: ignore[misc]
                    runs=args.runs,
                    reference=("raw issue rate", raw.median),
                )
                peers[clients] = peer.median
                figures.append(peer)
    else:
        print("cfssl not installed (Debian package golang-cfssl): no peer reference")
    databases = {"sqlite": "sqlite:///{ws}/birthright.db"}
    if os.environ.get("BIRTHRIGHT_BENCH_DATABASE_URL"):
        databases["postgresql"] = os.environ["BIRTHRIGHT_BENCH_DATABASE_URL"]
    for db_name, url_template in databases.items():
        for stations in (1, 8):
            ws = args.workdir / f"{db_name}-{stations}"
            shutil.rmtree(ws, ignore_errors=True)
            url = url_template.format(ws=ws)
            dirs = setup_workspace(
                ws,
                database_url=url,
                stations=stations,
                quantity=args.units * (args.runs + 1),
                softhsm=args.workdir / "hsm-stations",
                tag=f"{db_name[:2]}{stations}",
            )
            # Every run enrolls fresh keys: a key enrolled twice is refused (key_shared).
            batches = iter([make_csrs(args.units) for _ in range(args.runs)])
            counter = iter(range(1000))
            port = free_port()
            server_cpu: list[float] = []
            station_cpu: list[float] = []
            with service_process(ws, port, ca_file=ws / "ca" / "root.pem") as (base, proc):

                def one_run(
                    base: str = base,
                    dirs: list[Path] = dirs,
                    batches: Iterator[list[bytes]] = batches,
                    counter: Iterator[int] = counter,
                    pid: int = proc.pid,
                    server_cpu: list[float] = server_cpu,
                    station_cpu: list[float] = station_cpu,
                ) -> float:
                    before = cpu_seconds(pid)
                    rate, stations_cpu = run_stations(base, next(batches), dirs, next(counter))
                    server_cpu.append((cpu_seconds(pid) - before) / args.units * 1000)
                    station_cpu.append(stations_cpu / args.units * 1000)
                    return rate

                name = f"enrollments/s, {stations} station(s), {db_name}"
                measured = figure(
                    name,
                    "enrollments/s",
                    one_run,
                    runs=args.runs,
                    reference=("raw issue rate", raw.median),
                )
                figures.append(measured)
                if stations in peers:
                    figures.append(
                        Figure(
                            f"{name}, against cfssl",
                            "enrollments/s",
                            measured.median,
                            measured.minimum,
                            measured.maximum,
                            measured.runs,
                            reference=f"cfssl, {stations} client(s)",
                            reference_median=peers[stations],
                            ratio=measured.median / peers[stations],
                        )
                    )
                figures.append(
                    Figure(
                        f"service CPU per enrollment, {stations} station(s), {db_name}",
                        "ms",
                        statistics.median(server_cpu),
                        min(server_cpu),
                        max(server_cpu),
                        len(server_cpu),
                        note="reserve + enroll, both signed requests",
                    )
                )
                figures.append(
                    Figure(
                        f"station client CPU per enrollment, {stations} station(s), {db_name}",
                        "ms",
                        statistics.median(station_cpu),
                        min(station_cpu),
                        max(station_cpu),
                        len(station_cpu),
                        note="signing, TLS and HTTP in the stations' processes, which share "
                        "the service's two cores on this machine",
                    )
                )
                service_ms = statistics.median(server_cpu)
                figures.append(
                    Figure(
                        f"enrollments/s one service core sustains, {stations} station(s), "
                        f"{db_name}",
                        "enrollments/s",
                        1000 / service_ms,
                        1000 / max(server_cpu),
                        1000 / min(server_cpu),
                        len(server_cpu),
                        reference="raw issue rate",
                        reference_median=raw.median,
                        ratio=1000 / service_ms / raw.median,
                        note="1000 / service CPU ms per enrollment (the database's own CPU "
                        "not included)",
                    )
                )
    record(figures)
    print_table(figures)


if __name__ == "__main__":
    main()
