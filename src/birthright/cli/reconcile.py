"""`birthright shipments`, `chips` and `report`: import outside records, reconcile, sign."""

from __future__ import annotations

import hashlib
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
from birthright.db.reconcile import ImportResult, ReconcileStore
from birthright.errors import InputError
from birthright.reconcile.manifests import (
    DEFAULT_MAX_BYTES,
    ManifestRowsInvalid,
    format_for,
    parse_chip_deliveries,
    parse_shipments,
)
from birthright.reconcile.render import RENDERERS
from birthright.reconcile.report import assemble
from birthright.reconcile.signing import (
    ReportSignatureInvalid,
    load_or_create_report_key,
    load_report_public_key,
    sign_report,
    verify_report,
)
from birthright.settings import Settings

shipments_app = typer.Typer(help="Shipped-unit manifests.", no_args_is_help=True)
chips_app = typer.Typer(help="Secure-element chips delivered by vendors.", no_args_is_help=True)
report_app = typer.Typer(help="Signed reconciliation reports.", no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV, JSON or JSONL.")]
SkipBadOpt = Annotated[
    bool, typer.Option("--skip-bad", help="Import the good rows and list the bad ones.")
]
MaxBytesOpt = Annotated[int, typer.Option(min=1, help="Refuse files larger than this.")]


class OutputFormat(StrEnum):
    json = "json"
    csv = "csv"
    html = "html"


@contextmanager
def _store(settings: Settings) -> Iterator[ReconcileStore]:
    from birthright.db.engine import make_engine, make_sessionmaker

    engine = make_engine(settings.effective_database_url)
    try:
        yield ReconcileStore(make_sessionmaker(engine))
    finally:
        engine.dispose()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _show(result: ImportResult) -> None:
    table = Table("good rows", "added", "already present", "bad rows skipped")
    table.add_row(
        *(str(n) for n in (result.rows, result.added, result.already_present)),
        str(len(result.skipped)),
    )
    console.print(table)
    for error in result.skipped[:50]:
        err_console.print(f"skipped {escape(str(error))}")


def _refused(error: ManifestRowsInvalid) -> typer.Exit:
    for row in error.errors[:50]:
        err_console.print(f"[red]bad row[/] {escape(str(row))}")
    if len(error.errors) > 50:
        err_console.print(f"… and {len(error.errors) - 50} more")
    err_console.print(
        f"[bold red]error[/] {len(error.errors)} bad row(s): nothing was imported "
        "(fix the file, or pass --skip-bad to import the good rows)"
    )
    return typer.Exit(code=2)


@shipments_app.command("import")
def import_shipments(
    file: FileArg,
    skip_bad: SkipBadOpt = False,
    max_bytes: MaxBytesOpt = DEFAULT_MAX_BYTES,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Import a manifest (serial, work_order, ship_date, carton, pallet, destination)."""
    settings = settings_for(workspace)
    with file.open("rb") as f:
        parsed = parse_shipments(f, format_for(file.name), max_bytes=max_bytes)
    with _store(settings) as store:
        try:
            result = store.import_shipments(
                parsed, source_sha256=_sha256(file), skip_bad=skip_bad, now=datetime.now(UTC)
            )
        except ManifestRowsInvalid as e:
            raise _refused(e) from e
    _show(result)


@chips_app.command("import")
def import_chips(
    file: FileArg,
    skip_bad: SkipBadOpt = False,
    max_bytes: MaxBytesOpt = DEFAULT_MAX_BYTES,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Import a plain list of delivered chips (vendor, chip_id, delivered_at)."""
    settings = settings_for(workspace)
    with file.open("rb") as f:
        parsed = parse_chip_deliveries(f, format_for(file.name), max_bytes=max_bytes)
    with _store(settings) as store:
        try:
            result = store.import_chips(
                parsed, source_sha256=_sha256(file), skip_bad=skip_bad, now=datetime.now(UTC)
            )
        except ManifestRowsInvalid as e:
            raise _refused(e) from e
    _show(result)


def _day(value: str | None, all_time: bool) -> date | None:
    if all_time:
        return None
    if value is None:
        return datetime.now(UTC).date() - timedelta(days=1)
    try:
        return date.fromisoformat(value)
    except ValueError as e:
        raise InputError(f"--date {value!r} is not YYYY-MM-DD", code="bad_date") from e


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
        Path | None, typer.Option(help="Report file (default: <workspace>/reports/…).")
    ] = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Reconcile ordered, minted, enrolled and shipped units; write a signed report."""
    settings = settings_for(workspace)
    period = _day(day, all_time)
    with _store(settings) as store:
        figures = store.figures(period)
    report = assemble(figures, day=period, now=datetime.now(UTC))
    data = RENDERERS[fmt.value](report)
    if out is None:
        out = settings.ws.root / "reports" / f"reconciliation-{report.period}.{fmt.value}"
        out = out.with_name(out.name.replace(" ", "-"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    sig = out.with_name(out.name + ".sig")
    sig.write_bytes(sign_report(load_or_create_report_key(settings), data))
    console.print(f"wrote {escape(str(out))} and {escape(sig.name)}")
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
