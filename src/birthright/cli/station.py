"""`birthright station` commands: register a station, provision the connected units."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from birthright.cli.common import DEFAULT_WORKSPACE, WorkspaceOpt, console, settings_for
from birthright.db.engine import make_engine, make_sessionmaker
from birthright.db.operations import Operations
from birthright.station.client import BackendClient
from birthright.station.journal import FaultPlan, Journal
from birthright.station.line import Backoff, RunSummary, provision_line
from birthright.station.provision import Station, UnitOutcome

app = typer.Typer(help="Provisioning station commands.", no_args_is_help=True)

DevicesOpt = Annotated[Path, typer.Option("--devices", help="Folder of simulated devices.")]
ServerOpt = Annotated[str, typer.Option("--server", help="Backend base URL.")]


@app.command()
def register(
    station_id: Annotated[str, typer.Argument(help="Station id, e.g. site1-line1-st1.")],
    site: Annotated[str, typer.Option(help="Factory site.")],
    line: Annotated[str, typer.Option(help="Production line.")],
    station_dir: Annotated[
        Path, typer.Option(help="Where the station keeps its identity (config, certs, counter).")
    ],
    softhsm_dir: Annotated[
        Path | None,
        typer.Option(help="SoftHSM2 folder for the station token (default: its own)."),
    ] = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Register a station: key in its own token, certificates from the station CA (dev: both
    the station's and the operator's half run here)."""
    from birthright.station.enroll_station import register_station_identity

    settings = settings_for(workspace)
    sessions = make_sessionmaker(make_engine(settings.effective_database_url))
    st = register_station_identity(
        settings,
        sessions,
        station_id=station_id,
        site=site,
        line=line,
        station_dir=station_dir,
        softhsm_dir=softhsm_dir,
        now=datetime.now(UTC),
    )
    console.print(
        f"registered station [bold]{st.station_id}[/] at {site} / {line}; "
        f"identity in {st.station_dir}"
    )


def _operations(workspace: Path) -> Operations:
    settings = settings_for(workspace)
    return Operations(make_sessionmaker(make_engine(settings.effective_database_url)))


def _set_status(station_id: str, status: str, reason: str, workspace: Path) -> None:
    st = _operations(workspace).set_station_status(
        station_id, status, reason=reason, now=datetime.now(UTC)
    )
    console.print(f"station [bold]{st.station_id}[/] is now {st.status}")


ReasonOpt = Annotated[str, typer.Option("--reason", help="Why; kept in the audit log.")]


@app.command()
def suspend(
    station_id: str, reason: ReasonOpt, workspace: WorkspaceOpt = DEFAULT_WORKSPACE
) -> None:
    """Suspend a station: its requests are refused until it is resumed."""
    _set_status(station_id, "suspended", reason, workspace)


@app.command()
def resume(station_id: str, reason: ReasonOpt, workspace: WorkspaceOpt = DEFAULT_WORKSPACE) -> None:
    """Reactivate a suspended station."""
    _set_status(station_id, "active", reason, workspace)


@app.command()
def revoke(station_id: str, reason: ReasonOpt, workspace: WorkspaceOpt = DEFAULT_WORKSPACE) -> None:
    """Revoke a station for good (stolen, cloned, decommissioned)."""
    _set_status(station_id, "revoked", reason, workspace)


@app.command("list")
def list_stations(workspace: WorkspaceOpt = DEFAULT_WORKSPACE) -> None:
    """Registered stations and their state."""
    table = Table("station", "site", "line", "status")
    for st in _operations(workspace).stations():
        table.add_row(st.station_id, st.site, st.line, st.status)
    console.print(table)


@app.command()
def alerts(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    limit: Annotated[int, typer.Option(min=1)] = 50,
) -> None:
    """Recent security alerts (clones, shared keys, rate anomalies)."""
    table = Table("at", "severity", "kind", "station", "work order", "message")
    for a in _operations(workspace).alerts(limit=limit):
        colour = "red" if a["severity"] == "critical" else "yellow"
        table.add_row(
            str(a["at"])[:19],
            f"[{colour}]{a['severity']}[/]",
            str(a["kind"]),
            str(a["station_id"] or ""),
            str(a["work_order_id"] or ""),
            escape(str(a["message"])),
        )
    console.print(table)


def run_provisioning(
    *,
    devices: Path,
    server: str,
    station_dir: Path | None,
    work_order: str,
    station_id: str | None = None,
    journal: Path,
    pin: str | None = None,
    fault: FaultPlan | None = None,
    backoff: Backoff = Backoff(),  # noqa: B008 - frozen value object
) -> RunSummary:
    """Provision every device in ``devices`` with a live progress bar; used by the demo too."""
    from birthright.se.sim import open_device_set, read_device_pin

    device_set = open_device_set(devices, pin=pin or read_device_pin(devices))
    labels = [d.label for d in device_set.devices()]
    start = time.perf_counter()
    book = Journal(journal, fault=fault)
    backend, station_id = _client(server, station_dir, station_id)
    with backend, _progress() as progress:
        task = progress.add_task("provisioning", total=len(labels), rate="")
        station = Station(
            station_id=station_id, work_order_id=work_order, backend=backend, journal=book
        )

        def tick(outcome: UnitOutcome) -> None:
            done = progress.tasks[task].completed + 1
            rate = done / max(time.perf_counter() - start, 1e-9)
            progress.update(task, advance=1, rate=f"{rate:5.1f} units/s")
            if not outcome.ok:
                progress.console.print(
                    f"[red]✗ {outcome.label}[/] chip {outcome.chip_id}: "
                    f"[{outcome.code}] {outcome.reason}"
                )

        def stopped(outcome: UnitOutcome, delay: float) -> None:
            progress.console.print(
                f"[yellow]line stopped[/]: {escape(outcome.reason)} "
                f"— retrying {outcome.label} in {delay:.1f} s"
            )

        try:
            outcomes = provision_line(
                station, labels, device_set.open, on_unit=tick, on_stop=stopped, backoff=backoff
            )
        finally:
            book.close()
    return RunSummary(tuple(outcomes), time.perf_counter() - start)


def _client(
    server: str, station_dir: Path | None, station_id: str | None
) -> tuple[BackendClient, str]:
    """Speak as the station of ``station_dir`` (mTLS + signed requests), or, against a service
    whose station authentication is off, as ``station_id``."""
    if station_dir is not None:
        from birthright.station.connect import station_client
        from birthright.station.identity import load_station_config

        return station_client(station_dir, server), load_station_config(station_dir).station_id
    if station_id is None:
        raise typer.BadParameter("give --station-dir (or --station-id without station auth)")
    return BackendClient(server), station_id


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
    )


@app.command()
def provision(
    devices: DevicesOpt,
    server: ServerOpt,
    work_order: Annotated[str, typer.Option("--work-order", help="Open work order of the line.")],
    journal: Annotated[Path, typer.Option(help="The station's local journal (SQLite).")] = Path(
        "station-journal.db"
    ),
    give_up_after: Annotated[
        float, typer.Option(help="Seconds of backend outage before the run gives up.")
    ] = 600.0,
    fault: Annotated[
        str | None,
        typer.Option(envvar="BIRTHRIGHT_FAULT_KILL_AT", hidden=True, help="Crash tests only."),
    ] = None,
    station_dir: Annotated[
        Path | None, typer.Option(help="This station's identity (from `station register`).")
    ] = None,
    station_id: Annotated[
        str | None, typer.Option(help="Only against a service with station auth off.")
    ] = None,
) -> None:
    """Provision every connected secure element: key on chip, certificate, proof."""
    summary = run_provisioning(
        devices=devices,
        server=server,
        station_dir=station_dir,
        station_id=station_id,
        work_order=work_order,
        journal=journal,
        fault=FaultPlan.parse(fault) if fault else None,
        backoff=Backoff(give_up_after=give_up_after),
    )
    table = Table("device", "chip id", "serial", "result")
    for o in summary.outcomes:
        result = f"[green]{o.action}[/]" if o.ok else f"[red]{o.code}[/]: {o.reason}"
        table.add_row(o.label, o.chip_id, o.serial, result)
    console.print(table)
    console.print(
        f"{summary.good} good, {summary.failed} failed in {summary.seconds:.2f} s "
        f"({summary.units_per_second:.1f} units/s)"
    )
    if summary.failed:
        raise typer.Exit(code=1)
