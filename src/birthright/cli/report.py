"""`birthright report`: the signed morning report — generate, verify, list the history."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from birthright.cli.common import (
    DEFAULT_WORKSPACE,
    WorkspaceOpt,
    console,
    err_console,
    settings_for,
)
from birthright.errors import InputError
from birthright.reconcile.history import FORMATS, StoredReport, parse_period, period_of
from birthright.reconcile.render import exception_list_csv
from birthright.reconcile.report import Report
from birthright.reconcile.service import ReportService
from birthright.reconcile.signing import (
    ReportSignatureInvalid,
    load_report_public_key,
    verify_report,
)
from birthright.settings import Settings

report_app = typer.Typer(help="Signed reconciliation reports.", no_args_is_help=True)


class OutputFormat(StrEnum):
    json = "json"
    csv = "csv"
    html = "html"
    pdf = "pdf"
    all = "all"


@contextmanager
def report_service(settings: Settings) -> Iterator[ReportService]:
    from birthright.db.engine import make_engine, make_sessionmaker
    from birthright.server.backend import build_report_service

    engine = make_engine(settings.effective_database_url)
    try:
        yield build_report_service(settings, make_sessionmaker(engine))
    finally:
        engine.dispose()


def _day(value: str | None, all_time: bool) -> date | None:
    if all_time:
        return None
    if value is None:
        return datetime.now(UTC).date() - timedelta(days=1)
    try:
        return date.fromisoformat(value)
    except ValueError as e:
        raise InputError(f"--date {value!r} is not YYYY-MM-DD", code="bad_date") from e


def write_report(stored: StoredReport, report: Report, out: Path) -> list[Path]:
    """The report and its ``.sig`` at ``out``; next to an HTML page, the CSV lists it links
    (``exceptions/<kind>.csv``). Returns the paths written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(stored.content)
    sig = out.with_name(out.name + ".sig")
    sig.write_bytes(stored.signature)
    written = [out, sig]
    if stored.entry.format == "html":
        lists = out.parent / "exceptions"
        lists.mkdir(exist_ok=True)
        for kind, items in report.exceptions.items():
            path = lists / f"{kind}.csv"
            rows = [
                {"serial": e.serial, "work_order": e.work_order_id, "detail": e.detail}
                for e in items
            ]
            path.write_bytes(exception_list_csv(kind, rows))
            written.append(path)
    return written


def generate(
    settings: Settings, day: date | None, formats: list[str], out: Path | None, trigger: str
) -> tuple[Report, dict[str, Path]]:
    """Reconcile once, publish each format into the history, write the files."""
    with report_service(settings) as service:
        report = service.build(day)
        kept = service.publish(report, formats, trigger=trigger)
    folder = settings.ws.root / "reports" / period_of(day)
    paths: dict[str, Path] = {}
    for stored in kept:
        fmt = stored.entry.format
        target = out if out is not None and len(kept) == 1 else folder / f"reconciliation.{fmt}"
        write_report(stored, report, target)
        paths[fmt] = target
    return report, paths


@report_app.command()
def daily(
    day: Annotated[
        str | None, typer.Option("--date", help="UTC day, YYYY-MM-DD (default: yesterday).")
    ] = None,
    all_time: Annotated[bool, typer.Option("--all-time", help="Everything on record.")] = False,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = (
        OutputFormat.json
    ),
    out: Annotated[
        Path | None,
        typer.Option(help="Report file (default: <workspace>/reports/<day>/reconciliation.*)."),
    ] = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Reconcile ordered, minted, enrolled and shipped units; write a signed report and keep
    it in the history."""
    settings = settings_for(workspace)
    formats = list(FORMATS) if fmt is OutputFormat.all else [fmt.value]
    if out is not None and len(formats) > 1:
        raise InputError("--out names one file: pick one --format", code="bad_option")
    report, paths = generate(settings, _day(day, all_time), formats, out, "cli")
    for path in paths.values():
        console.print(f"wrote {escape(str(path))} and {escape(path.name)}.sig")
    total = report.total
    console.print(
        f"minted {total.minted}, shipped {total.shipped}, "
        f"enrolled-not-shipped {total.enrolled_not_shipped}, "
        f"shipped-not-enrolled {total.shipped_not_enrolled}, "
        f"shipped twice {total.shipped_twice}, foreign chips {total.foreign_chip}"
    )


@report_app.command()
def verify(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Report file.")],
    sig: Annotated[
        Path | None, typer.Option(help="Detached signature (default: FILE.sig).")
    ] = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Check a report against its detached signature; exit 1 when it was changed."""
    settings = settings_for(workspace)
    sig = sig or file.with_name(file.name + ".sig")
    try:
        key_id = verify_report(
            load_report_public_key(settings), file.read_bytes(), sig.read_bytes()
        )
    except ReportSignatureInvalid as e:
        err_console.print(f"[bold red]INVALID[/] {escape(str(file))}: {escape(e.message)}")
        raise typer.Exit(code=1) from e
    except FileNotFoundError as e:
        raise InputError(f"no signature file {sig}", code="signature_missing") from e
    console.print(f"[green]valid[/] {escape(str(file))}: signed by report key {key_id}")


@report_app.command()
def history(
    day: Annotated[
        str | None, typer.Option("--date", help="Only this period (YYYY-MM-DD or all-time).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 50,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """List the kept reports, newest first (the service serves them at /v1/reports)."""
    settings = settings_for(workspace)
    if day is not None:
        parse_period(day)
    with report_service(settings) as service:
        entries = service.history.entries(day, limit=limit)
    table = Table("period", "format", "generated at (UTC)", "trigger", "bytes", "sha256")
    for e in entries:
        table.add_row(
            e.period,
            e.format,
            e.generated_at.astimezone(UTC).isoformat(timespec="seconds"),
            e.trigger,
            str(e.size),
            e.sha256[:16] + "…",
        )
    console.print(table)
    console.print(f"{len(entries)} report(s)")
