"""Revocation at scale: CRL generation, OCSP answers/s and the attestation status read with
N revoked units in the database, each against OpenSSL doing the same job in the same run.

The N revoked units (devices + revocations rows) are bulk-inserted with SQLAlchemy Core
executemany; every figure is then taken through the repository's own code paths: the
revocation service's ``crl()`` (forced to re-sign each run), ``POST /ocsp`` on
``birthright serve`` over HTTPS, and the attestation store's device read.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import ssl
import statistics
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp

from bench.common import (
    Figure,
    cpu_seconds,
    figure,
    free_port,
    no_rate_limits,
    print_table,
    record,
    reset_postgres,
    service_process,
    status_responder,
)

BATCH = 20_000
GOOD = 100  # active units, so that OCSP also answers "good"
REVOKED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
NOT_AFTER = datetime(2046, 1, 1, tzinfo=UTC)
#: Shared placeholders: the CRL and OCSP read only cert_serial, revoked_at and reason.
PLACEHOLDER = b"\x30\x00"


def cert_serials(n: int, rng: random.Random) -> list[str]:
    """``n`` distinct 120-bit serials, lowercase hex as the database stores them (30 digits)."""
    out: set[str] = set()
    while len(out) < n:
        out.add(format(rng.getrandbits(120) | (1 << 119), "x"))
    return sorted(out)


def setup_workspace(ws: Path, *, database_url: str) -> None:
    from birthright.ca.setup import init_workspace_pki
    from birthright.db.migrate import upgrade
    from birthright.settings import load_settings, write_settings_file

    limits = no_rate_limits()
    settings = load_settings(
        ws, database_url=database_url, port=free_port(), report_schedule=False, **limits
    )
    settings.ws.create()
    write_settings_file(settings, ("database_url", "port", "report_schedule", *limits))
    if database_url.startswith("postgresql"):
        reset_postgres(database_url)
    upgrade(settings.effective_database_url)
    init_workspace_pki(settings, now=datetime.now(UTC))


def bulk_insert(
    database_url: str,
    revoked: list[str],
    good: list[str],
    *,
    product: str = "BENCH",
    first_id: int = 0,
    station: bool = True,
) -> float:
    """Devices (revoked, then ``good`` active ones) and their revocation rows; seconds."""
    from sqlalchemy import insert

    from birthright.db.engine import make_engine
    from birthright.db.models import DeviceRow, RevocationRow, StationRow

    engine = make_engine(database_url)
    start = time.perf_counter()
    if station:
        with engine.begin() as conn:
            conn.execute(
                insert(StationRow),
                [
                    {
                        "station_id": "bench",
                        "site": "s1",
                        "line": "l1",
                        "status": "active",
                        "created_at": REVOKED_AT,
                        "last_counter": 0,
                    }
                ],
            )
    everything = [(s, "revoked") for s in revoked] + [(s, "active") for s in good]
    for first in range(0, len(everything), BATCH):
        chunk = everything[first : first + BATCH]
        base = first_id + first
        with engine.begin() as conn:
            conn.execute(
                insert(DeviceRow),
                [
                    {
                        "serial": f"BR{base + i:010d}",
                        "chip_id": f"chip-{base + i}",
                        "key_fingerprint": f"{base + i:064x}",
                        "public_key_der": PLACEHOLDER,
                        "cert_serial": cert,
                        "cert_der": PLACEHOLDER,
                        "product": product,
                        "station_id": "bench",
                        "work_order_id": None,
                        "status": status,
                        "enrolled_at": REVOKED_AT,
                    }
                    for i, (cert, status) in enumerate(chunk)
                ],
            )
            rows = [
                {
                    "cert_serial": cert,
                    "serial": f"BR{base + i:010d}",
                    "revoked_at": REVOKED_AT,
                    "reason": "keyCompromise",
                    "recall_id": None,
                    "released_at": None,
                }
                for i, (cert, status) in enumerate(chunk)
                if status == "revoked"
            ]
            if rows:
                conn.execute(insert(RevocationRow), rows)
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed


# -- OpenSSL reference ------------------------------------------------------------------------


def write_openssl_ca(ws: Path, revoked: list[str], good: list[str]) -> Path:
    """A minimal ``openssl ca`` directory over the workspace's issuing CA; its config file."""
    d = ws / "openssl-ca"
    d.mkdir(exist_ok=True)
    expiry = NOT_AFTER.strftime("%y%m%d%H%M%SZ")
    when = REVOKED_AT.strftime("%y%m%d%H%M%SZ")
    with (d / "index.txt").open("w") as f:
        for s in revoked:
            f.write(f"R\t{expiry}\t{when},keyCompromise\t{s.upper()}\tunknown\t/CN=x\n")
        for s in good:
            f.write(f"V\t{expiry}\t\t{s.upper()}\tunknown\t/CN=x\n")
    (d / "index.txt.attr").write_text("unique_subject = no\n")
    (d / "crlnumber").write_text("01\n")
    conf = d / "ca.cnf"
    conf.write_text(
        "[ ca ]\ndefault_ca = bench\n\n[ bench ]\n"
        f"database = {d / 'index.txt'}\n"
        f"crlnumber = {d / 'crlnumber'}\n"
        f"certificate = {ws / 'ca' / 'issuing.pem'}\n"
        f"private_key = {ws / 'ca' / 'issuing-key.pem'}\n"
        "default_md = sha256\ndefault_crl_days = 1\nunique_subject = no\n"
        "crl_extensions = crl_ext\n\n[ crl_ext ]\nauthorityKeyIdentifier = keyid:always\n"
    )
    return conf


def openssl_gencrl(ws: Path, conf: Path) -> tuple[float, int]:
    """Seconds for ``openssl ca -gencrl`` and the DER size of the CRL it wrote."""
    out = conf.parent / "crl.pem"
    start = time.perf_counter()
    subprocess.run(
        [
            "openssl", "ca", "-batch", "-gencrl", "-config", str(conf), "-out", str(out),
            "-passin", f"file:{ws / 'secrets' / 'ca-passphrase'}",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    der = subprocess.run(
        ["openssl", "crl", "-in", str(out), "-outform", "DER"], check=True, capture_output=True
    ).stdout
    return elapsed, len(der)


# -- the repository's CRL path ----------------------------------------------------------------


def birthright_crl(ws: Path, database_url: str) -> Callable[[], tuple[float, int]]:
    """One forced re-signing through ``RevocationService.crl()``: (seconds, DER bytes)."""
    from sqlalchemy import update

    from birthright.db.models import CrlStateRow
    from birthright.server.backend import build_backend
    from birthright.settings import load_settings

    backend = build_backend(load_settings(ws, database_url=database_url))

    def once() -> tuple[float, int]:
        with backend.sessions.begin() as s:  # as a revocation would: the cached CRL is stale
            s.execute(update(CrlStateRow).where(CrlStateRow.id == 1).values(dirty=True))
        start = time.perf_counter()
        published = backend.revocation.crl()
        return time.perf_counter() - start, len(published.der)

    return once


# -- OCSP load --------------------------------------------------------------------------------


def ocsp_requests(ws: Path, serials: list[int]) -> list[bytes]:
    """Single-certificate requests with SHA-1 CertIDs, as RFC 5019 clients send them."""
    issuer = x509.load_pem_x509_certificate((ws / "ca" / "issuing.pem").read_bytes())
    name_hash = hashes.Hash(hashes.SHA1())  # noqa: S303 (CertID)
    name_hash.update(issuer.subject.public_bytes())
    key_hash = hashes.Hash(hashes.SHA1())  # noqa: S303 (CertID)
    key_hash.update(issuer.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint))
    nh, kh = name_hash.finalize(), key_hash.finalize()
    return [
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(nh, kh, s, hashes.SHA1())  # noqa: S303 (CertID)
        .build()
        .public_bytes(Encoding.DER)
        for s in serials
    ]


def ocsp_load(
    url: str,
    requests: list[bytes],
    *,
    threads: int,
    seconds: float,
    tls: ssl.SSLContext | None,
    keep_alive: bool = True,
) -> tuple[float, list[float]]:
    """``threads`` clients POSTing for ``seconds``: (answers/s, latencies in ms).

    The client is the standard library's ``http.client``: a light client leaves more of the
    two shared cores to the server under test (the same client loads both responders).
    """
    parts = urllib.parse.urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port, parts.path or "/"
    latencies: list[list[float]] = [[] for _ in range(threads)]
    stop = time.perf_counter() + seconds
    errors: list[str] = []
    headers = {"Content-Type": "application/ocsp-request"}
    if not keep_alive:  # openssl ocsp serves one connection at a time
        headers["Connection"] = "close"

    def connect() -> http.client.HTTPConnection:
        if tls is not None:
            return http.client.HTTPSConnection(host, port, context=tls, timeout=30)
        return http.client.HTTPConnection(host, port, timeout=30)

    def worker(k: int) -> None:
        mine = latencies[k]
        i = k
        conn = connect()
        try:
            while time.perf_counter() < stop:
                body = requests[i % len(requests)]
                i += threads
                t0 = time.perf_counter()
                if not keep_alive:
                    conn.close()
                    conn = connect()
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                mine.append((time.perf_counter() - t0) * 1000)
                if response.status != 200:
                    errors.append(f"HTTP {response.status}")
                    return
        except OSError as e:
            errors.append(repr(e))
        finally:
            conn.close()

    start = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"OCSP load failed: {errors[0]}")
    flat = [x for lat in latencies for x in lat]
    return len(flat) / elapsed, flat


def check_answers(
    url: str, requests: list[bytes], expect: list[str], verify: ssl.SSLContext | bool
) -> None:
    """The responder says what the database says (revoked / good / unknown) before timing."""
    for body, want in zip(requests, expect, strict=True):
        r = httpx.post(
            url,
            content=body,
            headers={"Content-Type": "application/ocsp-request", "Connection": "close"},
            verify=verify,
        )
        answer = ocsp.load_der_ocsp_response(r.content)
        assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL, url
        got = answer.certificate_status.name.lower()
        assert got == want, f"{url}: expected {want}, got {got}"


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def openssl_ocsp_responder(ws: Path, conf: Path, port: int) -> subprocess.Popen[bytes]:
    d = conf.parent
    proc = subprocess.Popen(
        [
            "openssl", "ocsp", "-index", str(d / "index.txt"), "-port", str(port),
            "-rsigner", str(ws / "ca" / "issuing.pem"), "-rkey", str(ws / "ca" / "issuing-key.pem"),
            "-passin", f"file:{ws / 'secrets' / 'ca-passphrase'}",
            "-CA", str(ws / "ca" / "issuing.pem"), "-nmin", "60",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(d / "ocsp.log").open("wb"),
    )  # fmt: skip
    # Probe with a real request: a bare connect wedges the single-threaded responder.
    probe = ocsp_requests(ws, [1])[0]
    deadline = time.monotonic() + 300  # it reads the whole index first
    while True:
        try:
            httpx.post(
                f"http://127.0.0.1:{port}/",
                content=probe,
                headers={"Content-Type": "application/ocsp-request", "Connection": "close"},
                timeout=5,
            )
            return proc
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"openssl ocsp did not start; see {d / 'ocsp.log'}") from None
            time.sleep(0.2)


# -- attestation status read ------------------------------------------------------------------


def status_lookup_us(database_url: str, serials: list[str], lookups: int) -> float:
    """Median µs of the attestation path's device read (``SqlAttestationRecords.device``)."""
    from birthright.db.attestation import SqlAttestationRecords
    from birthright.db.engine import make_engine, make_sessionmaker

    engine = make_engine(database_url)
    records = SqlAttestationRecords(make_sessionmaker(engine))
    rng = random.Random(7)
    times: list[float] = []
    for _ in range(lookups):
        serial = rng.choice(serials)
        t0 = time.perf_counter()
        device = records.device(serial)
        times.append((time.perf_counter() - t0) * 1e6)
        assert device is not None
        assert device.status in ("revoked", "active")
    engine.dispose()
    return statistics.median(times)


def bench_database(
    args: argparse.Namespace,
    db_name: str,
    url_template: str,
    revoked: list[str],
    good: list[str],
    rng: random.Random,
) -> list[Figure]:
    """Every figure for one database engine."""
    n = args.entries
    figures: list[Figure] = []
    ws = args.workdir / f"revocation-{db_name}"
    shutil.rmtree(ws, ignore_errors=True)
    db_url = url_template.format(ws=ws)
    setup_workspace(ws, database_url=db_url)
    inserted = bulk_insert(db_url, revoked, good)
    print(f"{db_name}: inserted {n:,} revoked + {GOOD} active units in {inserted:.1f} s")
    conf = write_openssl_ca(ws, revoked, good)
    tag = f"{n:,} revoked, {db_name}"

    # 1. CRL generation, ours against openssl ca -gencrl.
    sizes: dict[str, int] = {}

    def openssl_run(ws: Path = ws, conf: Path = conf) -> float:
        seconds, sizes["openssl"] = openssl_gencrl(ws, conf)
        return seconds

    ref = figure(f"openssl ca -gencrl, {n:,} entries", "s", openssl_run, runs=args.runs)
    ours_once = birthright_crl(ws, db_url)

    def ours_run(ours_once: Callable[[], tuple[float, int]] = ours_once) -> float:
        seconds, sizes["ours"] = ours_once()
        return seconds

    figures.append(
        figure(
            f"CRL generation (service.crl, forced), {tag}",
            "s",
            ours_run,
            runs=args.runs,
            reference=("openssl ca -gencrl", ref.median),
        )
    )
    figures.append(ref)
    figures.append(
        figure(
            f"CRL size, {tag}",
            "bytes",
            lambda: float(sizes["ours"]),
            runs=1,
            reference=("openssl ca -gencrl", float(sizes["openssl"])),
        )
    )

    # 2. OCSP over HTTPS against the service, and openssl ocsp over plain HTTP.
    figures += ocsp_figures(args, ws, conf, revoked, good, rng, tag)

    # 3. The attestation path's status read, one unit among N.
    serials = [f"BR{i:010d}" for i in range(n + GOOD)]
    figures.append(
        figure(
            f"attestation device/status read, {tag}",
            "µs",
            lambda: status_lookup_us(db_url, serials, args.lookups),
            runs=args.runs,
            note=f"median of {args.lookups:,} lookups per run",
        )
    )

    # 4. A recall of many active units (preview + execute), last: it revokes them.
    if args.recall_units:
        figures += recall_figures(args, ws, db_url, rng, first_id=n + GOOD, tag=tag)
    return figures


def ocsp_figures(
    args: argparse.Namespace,
    ws: Path,
    conf: Path,
    revoked: list[str],
    good: list[str],
    rng: random.Random,
    tag: str,
) -> list[Figure]:
    """Answers/s, p50/p99 and server CPU per answer: ours (HTTPS) and openssl ocsp (HTTP)."""
    n = len(revoked)
    picks = [int(s, 16) for s in rng.sample(revoked, 2000)] + [int(s, 16) for s in good]
    picks += [rng.getrandbits(120) | (1 << 119) for _ in range(20)]  # unknown
    rng.shuffle(picks)
    bodies = ocsp_requests(ws, picks)
    revoked_set = {int(s, 16) for s in revoked}
    good_set = {int(s, 16) for s in good}
    expect = [
        "revoked" if p in revoked_set else "good" if p in good_set else "unknown"
        for p in picks[:50]
    ]
    ca_file = ws / "ca" / "root.pem"
    tls = ssl.create_default_context(cafile=str(ca_file))
    runs: list[tuple[str, Figure, list[float], list[float]]] = []

    def measure(label: str, url: str, pid: int, tls: ssl.SSLContext | None) -> None:
        check_answers(url, bodies[:50], expect, tls or True)
        # warm up: every answer signed once, as a replica that has been up a while
        ocsp_load(url, bodies, threads=args.ocsp_threads, seconds=2, tls=tls)
        lat: list[float] = []
        cpu: list[float] = []

        def once() -> float:
            return _timed_load(url, bodies, args, tls=tls, pid=pid, lat=lat, cpu=cpu)

        rate = figure(f"OCSP answers/s, {label}", "answers/s", once, runs=args.runs)
        runs.append((label, rate, lat, cpu))

    threads = f"{args.ocsp_threads} client threads, {tag}"
    with service_process(ws, free_port(), ca_file=ca_file) as (base, proc):
        measure(f"service, HTTPS, {threads}", f"{base}/ocsp", proc.pid, tls)
    for workers in args.status_workers:
        with status_responder(ws, free_port(), workers=workers) as (base, pid):
            label = f"serve-status, HTTP, {workers} worker(s), {threads}"
            measure(label, f"{base}/ocsp", pid, None)
    ref_rate: Figure | None = None
    ref_lat: list[float] = []
    ref_cpu: list[float] = []
    if not args.no_openssl_ocsp:
        port = free_port()
        t0 = time.perf_counter()
        responder = openssl_ocsp_responder(ws, conf, port)
        print(f"openssl ocsp read its index in {time.perf_counter() - t0:.1f} s")
        try:
            # openssl says "unknown" for every serial not in its index, as we do.
            check_answers(f"http://127.0.0.1:{port}/", bodies[:50], expect, True)

            def openssl_ocsp(port: int = port, pid: int = responder.pid) -> float:
                return _timed_load(
                    f"http://127.0.0.1:{port}/",
                    bodies,
                    args,
                    tls=None,
                    pid=pid,
                    lat=ref_lat,
                    cpu=ref_cpu,
                    keep_alive=False,
                )

            ref_rate = figure(
                f"openssl ocsp answers/s, HTTP, 1 process, {n:,} entries",
                "answers/s",
                openssl_ocsp,
                runs=args.runs,
            )
        finally:
            responder.terminate()
            responder.wait(timeout=10)
    figures: list[Figure] = []
    for label, rate, lat, cpu in runs:
        figures += _ocsp_figures(label, rate, lat, cpu, args.runs, ref_rate, ref_lat, ref_cpu)
    if ref_rate is not None:
        figures.append(ref_rate)
    return figures


def _ocsp_figures(
    label: str,
    rate: Figure,
    lat: list[float],
    cpu: list[float],
    runs: int,
    ref_rate: Figure | None,
    ref_lat: list[float],
    ref_cpu: list[float],
) -> list[Figure]:
    """Answers/s, p50/p99 and server CPU per answer, each against ``openssl ocsp``."""
    if ref_rate is not None:
        rate.reference, rate.reference_median = "openssl ocsp", ref_rate.median
        rate.ratio = rate.median / ref_rate.median
    figures = [rate]
    for q in (50, 99):
        mine = percentile(lat, q)
        f = Figure(
            f"OCSP latency p{q}, {label}",
            "ms",
            mine,
            mine,
            mine,
            runs,
            note=f"over all requests of the {runs} runs",
        )
        if ref_lat:
            f.reference, f.reference_median = "openssl ocsp", percentile(ref_lat, q)
            f.ratio = mine / f.reference_median
        figures.append(f)
    per_answer = Figure(
        f"OCSP server CPU per answer, {label}",
        "µs",
        statistics.median(cpu),
        min(cpu),
        max(cpu),
        runs,
        note="server processes' user+system CPU / answers: what one core of a replica costs",
    )
    if ref_cpu:
        per_answer.reference = "openssl ocsp"
        per_answer.reference_median = statistics.median(ref_cpu)
        per_answer.ratio = per_answer.median / per_answer.reference_median
    figures.append(per_answer)
    return figures


def _timed_load(
    url: str,
    bodies: list[bytes],
    args: argparse.Namespace,
    *,
    tls: ssl.SSLContext | None,
    pid: int,
    lat: list[float],
    cpu: list[float],
    keep_alive: bool = True,
) -> float:
    """One load run: answers/s; latencies and the server's CPU µs per answer appended."""
    before = cpu_seconds(pid)
    rate, latencies = ocsp_load(
        url,
        bodies,
        threads=args.ocsp_threads,
        seconds=args.ocsp_seconds,
        tls=tls,
        keep_alive=keep_alive,
    )
    cpu.append((cpu_seconds(pid) - before) * 1e6 / len(latencies))
    lat.extend(latencies)
    return rate


def recall_figures(
    args: argparse.Namespace,
    ws: Path,
    db_url: str,
    rng: random.Random,
    *,
    first_id: int,
    tag: str,
) -> list[Figure]:
    """Preview + execute of a recall of ``--recall-units`` active units of one product,
    through ``RevocationService`` (the API's code path), among the N revoked ones."""
    from sqlalchemy import delete, update

    from birthright.db.models import DeviceRow, RevocationRow
    from birthright.revocation.model import Reason, Selection
    from birthright.server.backend import build_backend
    from birthright.settings import load_settings

    units = args.recall_units
    serials: set[str] = set()
    while len(serials) < units:  # top bit 118: never one of the N revoked (bit 119)
        serials.add(format(rng.getrandbits(118) | (1 << 118), "x"))
    inserted = bulk_insert(
        db_url, [], sorted(serials), product="RECALL", first_id=first_id, station=False
    )
    print(f"inserted {units:,} active units to recall in {inserted:.1f} s")
    backend = build_backend(load_settings(ws, database_url=db_url))
    previews: list[float] = []
    executions: list[float] = []
    try:
        for _ in range(args.runs):
            t0 = time.perf_counter()
            preview = backend.revocation.preview(Selection(product="RECALL"), Reason.superseded)
            t1 = time.perf_counter()
            result = backend.revocation.execute(preview.token)
            t2 = time.perf_counter()
            if preview.count != units or result.revoked != units:
                raise RuntimeError(f"recall revoked {result.revoked} of {units}")
            previews.append(t1 - t0)
            executions.append(t2 - t1)
            with backend.sessions.begin() as s:  # back to active for the next run
                s.execute(delete(RevocationRow).where(RevocationRow.recall_id == result.recall_id))
                s.execute(
                    update(DeviceRow).where(DeviceRow.product == "RECALL").values(status="active")
                )
    finally:
        backend.close()
    totals = [p + e for p, e in zip(previews, executions, strict=True)]
    name = f"recall of {units:,} units"
    return [
        Figure(
            f"{name} (preview + execute), {tag}",
            "s",
            statistics.median(totals),
            min(totals),
            max(totals),
            args.runs,
            note="RevocationService.preview then .execute, in process",
        ),
        Figure(
            f"{name}: preview, {tag}",
            "s",
            statistics.median(previews),
            min(previews),
            max(previews),
            args.runs,
        ),
        Figure(
            f"{name}: execute, {tag}",
            "s",
            statistics.median(executions),
            min(executions),
            max(executions),
            args.runs,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000, help="revoked units (N)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ocsp-seconds", type=float, default=10.0)
    parser.add_argument("--ocsp-threads", type=int, default=4)
    parser.add_argument("--lookups", type=int, default=10_000)
    parser.add_argument("--no-openssl-ocsp", action="store_true", help="skip the OCSP reference")
    parser.add_argument(
        "--status-workers",
        type=lambda v: [int(w) for w in v.split(",")],
        default=[1, 2],
        help="worker counts of `birthright serve-status` to measure (comma-separated)",
    )
    parser.add_argument(
        "--recall-units", type=int, default=100_000, help="units in the recall figure (0: skip)"
    )
    parser.add_argument(
        "--databases",
        default="sqlite,postgresql",
        help="comma-separated; postgresql needs BIRTHRIGHT_BENCH_DATABASE_URL",
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/birthright-bench"))
    args = parser.parse_args()
    n = args.entries
    rng = random.Random(2026)
    every = cert_serials(n + GOOD, rng)
    rng.shuffle(every)
    revoked, good = every[:n], every[n:]
    figures: list[Figure] = []
    wanted = args.databases.split(",")
    databases: dict[str, str] = {}
    if "sqlite" in wanted:
        databases["sqlite"] = "sqlite:///{ws}/birthright.db"
    if "postgresql" in wanted and os.environ.get("BIRTHRIGHT_BENCH_DATABASE_URL"):
        databases["postgresql"] = os.environ["BIRTHRIGHT_BENCH_DATABASE_URL"]
    for db_name, url_template in databases.items():
        figures += bench_database(args, db_name, url_template, revoked, good, rng)
    record(figures)
    print_table(figures)


if __name__ == "__main__":
    main()
