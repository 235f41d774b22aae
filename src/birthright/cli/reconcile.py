"""`birthright shipments` and `chips`: import the outside records reconciliation compares."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar

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
from birthright.errors import BirthrightError, InputError
from birthright.reconcile.manifests import (
    DEFAULT_MAX_BYTES,
    ChipDelivery,
    ManifestRowsInvalid,
    Parsed,
    Shipment,
    format_for,
    parse_chip_deliveries,
    parse_shipments,
)
from birthright.reconcile.microchip import ManifestSigner, parse_microchip_manifest
from birthright.settings import Settings

shipments_app = typer.Typer(help="Shipped-unit manifests.", no_args_is_help=True)
chips_app = typer.Typer(help="Secure-element chips delivered by vendors.", no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV, JSON or JSONL.")]
SkipBadOpt = Annotated[
    bool, typer.Option("--skip-bad", help="Import the good rows and list the bad ones.")
]
MaxBytesOpt = Annotated[int, typer.Option(min=1, help="Refuse files larger than this.")]


@contextmanager
def _store(settings: Settings) -> Iterator[ReconcileStore]:
    from birthright.db.engine import make_engine, make_sessionmaker

    engine = make_engine(settings.effective_database_url)
    try:
        yield ReconcileStore(make_sessionmaker(engine))
    finally:
        engine.dispose()


R = TypeVar("R")


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
        where = f" [{row.code}]" if row.code != "row_invalid" else ""
        err_console.print(f"[red]bad row[/]{escape(where)} {escape(str(row))}")
    if len(error.errors) > 50:
        err_console.print(f"… and {len(error.errors) - 50} more")
    err_console.print(
        f"[bold red]error[/] {len(error.errors)} bad row(s): nothing was imported "
        "(fix the file, or pass --skip-bad to import the good rows)"
    )
    return typer.Exit(code=2)


def _run_import(
    settings: Settings,
    file: Path,
    event: str,
    parse: Callable[[], Parsed[R]],
    load: Callable[[ReconcileStore, Parsed[R], str], ImportResult],
) -> None:
    """Parse, then import in one transaction; a refusal writes only its audit record."""
    sha256 = _sha256(file)
    with _store(settings) as store:
        try:
            parsed = parse()
        except BirthrightError as e:  # the file as a whole is refused
            store.record_refusal(event, sha256, e, datetime.now(UTC))
            raise
        try:
            result = load(store, parsed, sha256)
        except ManifestRowsInvalid as e:
            raise _refused(e) from e
    _show(result)


@shipments_app.command("import")
def import_shipments(
    file: FileArg,
    skip_bad: SkipBadOpt = False,
    max_bytes: MaxBytesOpt = DEFAULT_MAX_BYTES,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Import a manifest (serial, work_order, ship_date, carton, pallet, destination)."""

    def parse() -> Parsed[Shipment]:
        with file.open("rb") as f:
            return parse_shipments(f, format_for(file.name), max_bytes=max_bytes)

    def load(store: ReconcileStore, parsed: Parsed[Shipment], sha256: str) -> ImportResult:
        return store.import_shipments(
            parsed, source_sha256=sha256, skip_bad=skip_bad, now=datetime.now(UTC)
        )

    _run_import(settings_for(workspace), file, "shipments.import", parse, load)


@chips_app.command("import")
def import_chips(
    file: FileArg,
    microchip: Annotated[
        bool,
        typer.Option(
            "--microchip",
            help="FILE is a Microchip Trust Platform manifest (JSON list of signed entries).",
        ),
    ] = False,
    signer: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="The vendor's manifest signing certificate (PEM); required with --microchip.",
        ),
    ] = None,
    delivered: Annotated[
        str | None,
        typer.Option("--delivered-at", help="Delivery date for a signed manifest (default: now)."),
    ] = None,
    skip_bad: SkipBadOpt = False,
    max_bytes: MaxBytesOpt = DEFAULT_MAX_BYTES,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Import delivered chips: a plain list (vendor, chip_id, delivered_at), or a signed
    Microchip manifest verified entry by entry against the vendor's certificate."""
    if microchip and signer is None:
        raise InputError("--microchip needs --signer CERT.pem", code="signer_required")
    at = _delivered_at(delivered)

    def parse() -> Parsed[ChipDelivery]:
        with file.open("rb") as f:
            if signer is not None:
                trusted = ManifestSigner.from_pem(signer.read_bytes())
                return parse_microchip_manifest(f, trusted, delivered_at=at, max_bytes=max_bytes)
            return parse_chip_deliveries(f, format_for(file.name), max_bytes=max_bytes)

    def load(store: ReconcileStore, parsed: Parsed[ChipDelivery], sha256: str) -> ImportResult:
        return store.import_chips(
            parsed, source_sha256=sha256, skip_bad=skip_bad, now=datetime.now(UTC)
        )

    _run_import(settings_for(workspace), file, "chips.import", parse, load)


def _delivered_at(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(value)
    except ValueError as e:
        raise InputError(f"--delivered-at {value!r} is not an ISO date", code="bad_date") from e
    if isinstance(at, datetime) and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at
