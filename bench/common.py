"""Shared benchmark plumbing: repeated runs, medians, results.json, servers on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from queue import Empty
from typing import Any, TypeVar

import httpx

RESULTS = Path(__file__).parent / "results.json"
T = TypeVar("T", bound=tuple[Any, ...])


@dataclass
class Figure:
    name: str
    unit: str
    median: float
    minimum: float
    maximum: float
    runs: int
    reference: str | None = None
    reference_median: float | None = None
    ratio: float | None = None
    note: str = ""


def measure(fn: Callable[[], float], *, runs: int = 3) -> tuple[float, float, float]:
    values = [fn() for _ in range(runs)]
    return statistics.median(values), min(values), max(values)


def figure(
    name: str,
    unit: str,
    fn: Callable[[], float],
    *,
    runs: int = 3,
    reference: tuple[str, float] | None = None,
    note: str = "",
) -> Figure:
    med, lo, hi = measure(fn, runs=runs)
    f = Figure(name, unit, med, lo, hi, runs, note=note)
    if reference is not None:
        f.reference, f.reference_median = reference
        f.ratio = med / reference[1] if reference[1] else None
    return f


def once(name: str, unit: str, value: object, note: str = "") -> Figure:
    """A figure measured once (a long run, or one whose repeats are inside it)."""
    v = float(value)  # type: ignore[arg-type]
    return Figure(name, unit, v, v, v, 1, note=note)


def record(figures: list[Figure]) -> None:
    existing: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for f in figures:
        existing[f.name] = asdict(f)
    existing["_machine"] = {"cores": os.cpu_count(), "python": sys.version.split()[0]}
    RESULTS.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")


def print_table(figures: list[Figure]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("figure", "median", "min … max", "unit", "reference", "ratio")
    for f in figures:
        ref = f"{f.reference} = {f.reference_median:,.1f}" if f.reference_median else ""
        ratio = f"{f.ratio:.2f}×" if f.ratio is not None else ""
        table.add_row(
            f.name, f"{f.median:,.1f}", f"{f.minimum:,.1f} … {f.maximum:,.1f}", f.unit, ref, ratio
        )
    Console(width=140).print(table)


class Started:
    """Handed to each process of ``run_parallel``: wait for the others, then take the time."""

    def __init__(self, barrier: Any, lock: Any) -> None:
        self._barrier = barrier
        #: Held around a process's setup (``with started.setup:``): SoftHSM2 processes that
        #: open one token folder at the same moment can fail to read a token.
        self.setup = lock

    def go(self) -> float:
        self._barrier.wait()
        return time.time()

    def abort(self) -> None:
        """A job that failed lets the others past the barrier (they raise and report)."""
        self._barrier.abort()


def _run_job(
    fn: Callable[..., Any],
    started: Started,
    job: tuple[Any, ...],
    index: int,
    results: Any,
) -> None:
    try:
        results.put((index, fn(started, *job), None))
    except BaseException as e:  # the parent raises it; a silent child would hang the barrier
        started.abort()
        results.put((index, None, f"{type(e).__name__}: {e}"))


def run_parallel(fn: Callable[..., T], jobs: list[tuple[Any, ...]]) -> list[T]:
    """Run ``fn(started, *job)`` in one spawned process per job, all at once; each does its
    setup, calls ``started.go()`` (which returns when every process is ready) and returns
    ``(items done, start, end, ...)``; returns those results. Timed from ``go()``: process
    start-up and client setup are not timed, as on a line that has been running.

    One ``Process`` per job, not a pool: a pool may hand two jobs to one process, and both
    would wait at the barrier for ever.
    """
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")  # never fork a process with PKCS#11 loaded
    started = Started(spawn.Barrier(len(jobs)), spawn.Lock())
    queue = spawn.Queue()
    procs = [
        spawn.Process(target=_run_job, args=(fn, started, job, i, queue))
        for i, job in enumerate(jobs)
    ]
    for proc in procs:
        proc.start()
    answers: list[tuple[int, T | None, str | None]] = []
    try:
        while len(answers) < len(procs):
            try:
                answers.append(queue.get(timeout=5))
            except Empty:
                if not any(proc.is_alive() for proc in procs) and queue.empty():
                    raise RuntimeError("a parallel job died without an answer") from None
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    # A job that failed broke the barrier for the others: name its error, not theirs.
    failures = sorted((e for _, _, e in answers if e), key=lambda e: "BrokenBarrier" in e)
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(jobs)} parallel jobs failed: {failures[0]}")
    return [result for _, result, _ in answers if result is not None]


def in_parallel(fn: Callable[..., tuple[int, float, float]], jobs: list[tuple[Any, ...]]) -> float:
    """``run_parallel``'s items per second from the first start to the last end."""
    return rate_of(run_parallel(fn, jobs))


def rate_of(results: Sequence[tuple[Any, ...]]) -> float:
    """Items per second of ``(items done, start, end, ...)`` results."""
    done = sum(r[0] for r in results)
    return float(done / (max(r[2] for r in results) - min(r[1] for r in results)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def service(
    workspace: Path, port: int, *, extra: list[str] | None = None, ca_file: Path | None = None
) -> Iterator[str]:
    """``birthright serve`` as a child process; stopped and reaped on exit."""
    with service_process(workspace, port, extra=extra, ca_file=ca_file) as (url, _proc):
        yield url


@contextmanager
def service_process(
    workspace: Path, port: int, *, extra: list[str] | None = None, ca_file: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``service`` that also hands out the process (to read its CPU time)."""
    command = ["serve", "-w", str(workspace), "--port", str(port), *(extra or [])]
    scheme = "https" if ca_file else "http"
    with _child_server(command, f"{scheme}://127.0.0.1:{port}", workspace, ca_file) as running:
        yield running


@contextmanager
def status_responder(workspace: Path, port: int, *, workers: int) -> Iterator[tuple[str, int]]:
    """``birthright serve-status`` (plain HTTP) as a child process; its URL and pid."""
    command = ["serve-status", "-w", str(workspace), "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with _child_server([*command, "--workers", str(workers)], url, workspace) as (_, proc):
        yield url, proc.pid


@contextmanager
def _child_server(
    command: list[str], url: str, workspace: Path, ca_file: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``birthright <command>`` as a child process, up once ``/healthz`` answers; stopped
    and reaped on exit. Its output goes to ``<workspace>/bench-<command>.log``."""
    log_path = workspace / f"bench-{command[0]}.log"
    log = log_path.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "birthright.cli.main", *command],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    verify: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1, verify=verify).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"birthright {command[0]} did not start; see {log_path}")
            time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def reset_postgres(url: str) -> None:
    """Drop and re-create the ``public`` schema of the benchmark's own PostgreSQL database."""
    from sqlalchemy import text

    from birthright.db.engine import make_engine

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process and its live children have used so far (Linux
    ``/proc``): a server with worker processes counts as one."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return own + sum(cpu_seconds(c) for c in children if Path(f"/proc/{c}").exists())


def no_rate_limits() -> dict[str, float]:
    """Settings that switch the service's rate limits off, where this version has them:
    a benchmark's one client address would otherwise be throttled like a flood."""
    from birthright.settings import Settings

    wanted = ("rate_limit_client_per_second", "rate_limit_station_per_second")
    return {key: 0.0 for key in wanted if key in Settings.model_fields}
