"""Reconciliation at scale: N enrolled serials against N shipped, on SQLite and PostgreSQL.

The data is bulk-loaded in SQL (a recursive CTE on SQLite, ``generate_series`` on PostgreSQL),
never through the ORM row by row, into the real schema (migrations applied). One in every
10,000 serials is an exception of each kind, so the report names N/10,000 serials per kind:

* enrolled, never shipped: serial i with i % 10,000 == 0;
* shipped twice (a second carton): i % 10,000 == 5,000;
* enrolled on a chip nobody delivered: i % 10,000 == 1;
* shipped, never enrolled: N/10,000 serials past the last enrolled one.

Shipments therefore hold N rows, chip deliveries N - N/10,000. Units are enrolled in serial
order through the day, as a line mints them.

Then the repository's own ``ReconcileStore.figures`` runs for the day (every unit was enrolled
and shipped that day) and for all time, ``--runs`` times each (3; the median is the figure);
the figures are checked against the expected counts; time per query and the peak memory of
this process (``ru_maxrss``) are printed. On PostgreSQL the server's memory is not in that
figure (its ``work_mem`` is set per query). The reference, ``sort | comm`` of the two lists,
runs as many times after them, and its median is the one compared: one run of either moves
by ± 50 % on a shared machine.

Run: ``python -m bench.reconcile --rows 10000000`` (SQLite in a temporary folder, and
PostgreSQL when ``BIRTHRIGHT_BENCH_DATABASE_URL`` is set; ``--db sqlite|postgres`` picks one).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import Engine, text

from bench.common import Figure, once, print_table, record, reset_postgres

DAY = date(2026, 11, 26)
EVERY = 10_000
WORK_ORDERS = 10

SQLITE_LOAD = [
    """INSERT INTO devices (serial, chip_id, key_fingerprint, public_key_der, cert_serial,
         cert_der, product, station_id, work_order_id, status, enrolled_at)
       WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows)
       SELECT printf('BRS%010d', i), printf('CHIP%010d', i), printf('%064x', i), x'00',
              printf('%x', i), x'00', 'BENCH', 'bench', 'WO-' || (i % :wos), 'active',
              datetime(:day, '+' || (i * 86399 / :rows) || ' seconds') || '.000000'
       FROM n""",
    """INSERT INTO shipments (serial, work_order_id, ship_date, carton, pallet, destination,
         source_sha256, source_line, imported_at)
       WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows)
       SELECT printf('BRS%010d', i), 'WO-' || (i % :wos), :day, 'C' || (i / 100),
              'P' || (i / 10000), 'Rotterdam', :sha, i, :now
       FROM n WHERE i % :every != 0""",
    """INSERT INTO shipments (serial, work_order_id, ship_date, carton, pallet, destination,
         source_sha256, source_line, imported_at)
       WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :ghosts)
       SELECT printf('BRS%010d', :rows + i), 'WO-' || (i % :wos), :day, 'CX', 'PX',
              'Rotterdam', :sha, i, :now
       FROM n""",
    """INSERT INTO shipments (serial, work_order_id, ship_date, carton, pallet, destination,
         source_sha256, source_line, imported_at)
       WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows)
       SELECT printf('BRS%010d', i), 'WO-' || (i % :wos), :day, 'C2-' || (i / 100),
              'P' || (i / 10000), 'Rotterdam', :sha, i, :now
       FROM n WHERE i % :every = 5000""",
    """INSERT INTO chip_deliveries (chip_id, vendor, delivered_at, source_sha256, imported_at)
       WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows)
       SELECT printf('CHIP%010d', i), 'Microchip', :day || ' 00:00:00.000000', :sha, :now
       FROM n WHERE i % :every != 1""",
    "ANALYZE",
]

PG_LOAD = [
    """INSERT INTO devices (serial, chip_id, key_fingerprint, public_key_der, cert_serial,
         cert_der, product, station_id, work_order_id, status, enrolled_at)
       SELECT 'BRS' || lpad(i::text, 10, '0'), 'CHIP' || lpad(i::text, 10, '0'),
              lpad(to_hex(i), 64, '0'), '\\x00'::bytea, to_hex(i), '\\x00'::bytea, 'BENCH',
              'bench', 'WO-' || (i % :wos), 'active',
              CAST(:day AS date)::timestamptz + (i * 86399 / :rows) * interval '1 second'
       FROM generate_series(1, CAST(:rows AS bigint)) AS i""",
    """INSERT INTO shipments (serial, work_order_id, ship_date, carton, pallet, destination,
         source_sha256, source_line, imported_at)
       SELECT 'BRS' || lpad(i::text, 10, '0'), 'WO-' || (i % :wos), CAST(:day AS date),
              'C' || (i / 100), 'P' || (i / 10000), 'Rotterdam', :sha, i,
              CAST(:now AS timestamptz)
       FROM generate_series(1, CAST(:rows AS bigint)) AS i WHERE i % :every != 0""",
    """INSERT INTO shipments (serial, work_order_id, ship_date, carton, pallet, destination,
         source_sha256, source_line, imported_at)
       SELECT 'BRS' || lpad((:rows + i)::text, 10, '0'), 'WO-' || (i % :wos),
              CAST(:day AS date), 'CX', 'PX', 'Rotterdam', :sha, i, CAST(:now AS timestamptz)
       FROM generate_series(1, CAST(:ghosts AS bigint)) AS i""",
    """INSERT INTO shipments (serial, work_order_id, ship_date, carton, pallet, destination,
         source_sha256, source_line, imported_at)
       SELECT 'BRS' || lpad(i::text, 10, '0'), 'WO-' || (i % :wos), CAST(:day AS date),
              'C2-' || (i / 100), 'P' || (i / 10000), 'Rotterdam', :sha, i,
              CAST(:now AS timestamptz)
       FROM generate_series(1, CAST(:rows AS bigint)) AS i WHERE i % :every = 5000""",
    """INSERT INTO chip_deliveries (chip_id, vendor, delivered_at, source_sha256, imported_at)
       SELECT 'CHIP' || lpad(i::text, 10, '0'), 'Microchip', CAST(:day AS date)::timestamptz,
              :sha, CAST(:now AS timestamptz)
       FROM generate_series(1, CAST(:rows AS bigint)) AS i WHERE i % :every != 1""",
]


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fresh_database(url: str) -> Engine:
    from birthright.db.engine import make_engine
    from birthright.db.migrate import upgrade

    if url.startswith("postgresql"):
        reset_postgres(url)
    upgrade(url)
    return make_engine(url)


def seed_orders(engine: Engine, rows: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO stations (station_id, site, line, status, created_at, last_counter) "
                "VALUES ('bench', 's1', 'l1', 'active', :at, 0)"
            ),
            {"at": start},
        )
        conn.execute(
            text(
                "INSERT INTO work_orders (work_order_id, product, site, line, quantity, "
                "serial_prefix, serial_first, serial_last, next_serial, minted, status, "
                "valid_from, valid_until, created_at, updated_at) VALUES (:wo, 'BENCH', :site, "
                ":line, :qty, 'BRS', 1, :qty, :qty, :qty, 'open', :at, :until, :at, :at)"
            ),
            [
                {
                    "wo": f"WO-{k}",
                    "site": f"site{k % 2 + 1}",
                    "line": f"line{k % 5 + 1}",
                    "qty": rows // WORK_ORDERS,
                    "at": start,
                    "until": datetime(2027, 1, 1, tzinfo=UTC),
                }
                for k in range(WORK_ORDERS)
            ],
        )


def load(engine: Engine, rows: int) -> float:
    params = {
        "rows": rows,
        "ghosts": rows // EVERY,  # shipped serials past the last enrolled one
        "wos": WORK_ORDERS,
        "every": EVERY,
        "day": DAY.isoformat(),
        "sha": "f" * 64,
        "now": datetime(2026, 11, 27, 6, tzinfo=UTC).isoformat(),
    }
    postgres = engine.dialect.name == "postgresql"
    start = time.perf_counter()
    for statement in PG_LOAD if postgres else SQLITE_LOAD:
        with engine.begin() as conn:
            used = {k: v for k, v in params.items() if f":{k}" in statement}
            conn.execute(text(statement), used)
    if postgres:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - start


def expected(rows: int) -> dict[str, int]:
    per_kind = rows // EVERY
    return {
        "enrolled_not_shipped": per_kind,
        "shipped_twice": per_kind,
        "foreign_chip": per_kind,
        "shipped_not_enrolled": per_kind,
    }


def export_serials(engine: Engine, folder: Path) -> tuple[Path, Path]:
    """The two serial lists as plain files, shuffled (``shuf``) as shipping records come."""
    lists = []
    for table in ("devices", "shipments"):
        path = folder / f"{table}.txt"
        with engine.connect() as conn, path.open("w") as out:
            result = conn.execution_options(stream_results=True, yield_per=100_000).execute(
                text(f"SELECT serial FROM {table}")  # noqa: S608 - fixed table names
            )
            for chunk in result.partitions():
                out.write("".join(f"{serial}\n" for (serial,) in chunk))
        subprocess.run(["shuf", "-o", str(path), str(path)], check=True)
        lists.append(path)
    return lists[0], lists[1]


def sort_comm(enrolled: Path, shipped: Path, folder: Path) -> tuple[float, float]:
    """The reference: ``LC_ALL=C sort`` both lists, then ``comm -3`` (serials in one list
    only). Returns seconds and the peak RSS of the largest child (MiB)."""
    env = {**os.environ, "LC_ALL": "C"}
    start = time.perf_counter()
    peaks = [
        _child_peak_rss(["sort", "-o", str(folder / f"{path.stem}.sorted"), str(path)], env=env)
        for path in (enrolled, shipped)
    ]
    comm = [
        "sh",
        "-c",
        f"comm -3 {folder / 'devices.sorted'} {folder / 'shipments.sorted'} > {folder / 'comm'}",
    ]
    peaks.append(_child_peak_rss(comm, env=env))
    return time.perf_counter() - start, max(peaks)


_PEAK = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def _child_peak_rss(command: list[str], *, env: dict[str, str]) -> float:
    """Run ``command`` under a small Python parent of its own; the peak RSS of it (MiB)."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, *command], check=True, env=env, capture_output=True
    )
    return int(done.stdout.split()[-1]) / 1024


def _spread(name: str, values: list[float], note: str) -> Figure:
    """Median, min and max of repeated runs, as ``bench.common.figure`` records them."""
    return Figure(
        name,
        "s",
        statistics.median(values),
        min(values),
        max(values),
        len(values),
        note=note,
    )


def run(name: str, url: str, rows: int, folder: Path, runs: int) -> list[Figure]:
    from birthright.db.engine import make_sessionmaker
    from birthright.db.reconcile import ReconcileStore
    from birthright.reconcile.render import to_json
    from birthright.reconcile.report import assemble

    engine = fresh_database(url)
    seed_orders(engine, rows)
    loaded = load(engine, rows)
    print(f"{name}: loaded {rows:,} devices, shipments and chips in {loaded:.1f} s")
    store = ReconcileStore(make_sessionmaker(engine))
    out: list[Figure] = [once(f"reconcile.{name}.load_{rows}", "s", loaded)]
    timed: list[Figure] = []
    for label, day in (("day", DAY), ("all_time", None)):
        times: list[float] = []
        for _ in range(runs):
            timings: dict[str, float] = {}
            start = time.perf_counter()
            figures = store.figures(day, timings=timings)
            times.append(time.perf_counter() - start)
            report = assemble(figures, day=day, now=datetime.now(UTC))
            size = len(to_json(report))
            counts = {k: len(v) for k, v in report.exceptions.items()}
            if counts != expected(rows):
                raise SystemExit(f"{name} {label}: wrong figures {counts} != {expected(rows)}")
            if report.total.minted != rows:
                raise SystemExit(f"{name} {label}: minted {report.total.minted} != {rows}")
            detail = ", ".join(f"{k} {v:.2f}s" for k, v in timings.items())
            print(f"{name} {label}: {times[-1]:.2f} s ({detail}); JSON {size:,} bytes")
        timed.append(_spread(f"reconcile.{name}.{label}_{rows}", times, note=detail))
    rss = once(f"reconcile.{name}.peak_rss_{rows}", "MiB", maxrss_mib())
    # The reference after our own figures, so its export does not count in our peak RSS.
    enrolled, shipped = export_serials(engine, folder)
    references = [sort_comm(enrolled, shipped, folder) for _ in range(runs)]
    for seconds, peak in references:
        print(f"{name}: sort | comm of the two lists {seconds:.2f} s, {peak:.0f} MiB")
    reference = statistics.median(seconds for seconds, _ in references)
    reference_rss = max(peak for _, peak in references)
    for figure in timed:
        figure.reference, figure.reference_median = "sort | comm", reference
        figure.ratio = figure.median / reference
    rss.reference, rss.reference_median = "sort | comm (peak RSS)", reference_rss
    rss.ratio = rss.median / reference_rss
    out += [*timed, rss]
    engine.dispose()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="enrolled serials (N)")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--runs",
        type=int,
        default=3,
        help="reports of each period, and sort | comm runs; the medians are compared",
    )
    args = parser.parse_args(argv)
    if args.rows < EVERY:
        parser.error(f"--rows must be at least {EVERY}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    pg_url = os.environ.get("BIRTHRIGHT_BENCH_DATABASE_URL", "")
    figures: list[Figure] = []
    targets: list[tuple[str, Callable[[Path], str]]] = []
    if args.db in ("sqlite", "both"):
        targets.append(("sqlite", lambda d: f"sqlite:///{d / 'reconcile.db'}"))
    if args.db in ("postgres", "both"):
        if pg_url:
            targets.append(("postgres", lambda _d: pg_url))
        elif args.db == "postgres":
            parser.error("set BIRTHRIGHT_BENCH_DATABASE_URL to a PostgreSQL database")
    for name, url_for in targets:
        with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp:
            figures += run(name, url_for(Path(tmp)), args.rows, Path(tmp), args.runs)
    print_table(figures)
    record(figures)


if __name__ == "__main__":
    main()
