"""`birthright audit` commands: verify the hash chain, sign its head, list events."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text
from sqlalchemy.orm import Session, sessionmaker

from birthright.audit.verify import ChainReport
from birthright.cli.common import DEFAULT_WORKSPACE, WorkspaceOpt, console, settings_for
from birthright.settings import Settings

app = typer.Typer(help="Tamper-evident audit log commands.", no_args_is_help=True)


@contextmanager
def _sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    from birthright.db.engine import make_engine, make_sessionmaker

    engine = make_engine(settings.effective_database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


@app.command()
def verify(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    batch: Annotated[int, typer.Option(min=1, help="Rows fetched per query.")] = 5000,
) -> None:
    """Walk the whole chain and its signed checkpoints; exit 1 at the first broken link."""
    from birthright.audit.signing import audit_public_key_path, load_audit_public_key
    from birthright.db.audit import verify_audit_log

    settings = settings_for(workspace)
    public_key = load_audit_public_key(settings)
    if public_key is None:
        console.print(
            Text(
                f"warning: no audit public key at {audit_public_key_path(settings)}; "
                "signed checkpoints cannot be checked",
                style="yellow",
            )
        )
    with _sessions(settings) as sessions:
        report = verify_audit_log(sessions, public_key, batch=batch)
    _render_report(report)
    if not report.ok:
        raise typer.Exit(code=1)


def _render_report(report: ChainReport) -> None:
    last = "none" if report.last_checkpoint is None else f"seq {report.last_checkpoint}"
    console.print(
        Text(
            f"rows checked: {report.rows_checked}\n"
            f"checkpoints verified: {report.checkpoints_verified} (newest: {last})"
        )
    )
    first = report.first_broken
    if first is None:
        console.print(Text("audit chain intact", style="bold green"))
        return
    where = "" if first.seq is None else f" at seq {first.seq}"
    console.print(Text(f"audit chain BROKEN{where}: {first.id}", style="bold red"))
    console.print(Text(f"  {first.message}"))
    others = len(report.findings) - 1 + report.findings_dropped
    if others:
        console.print(Text(f"  ({others} further finding(s))"))
        for finding in report.findings:
            if finding is not first:
                console.print(Text(f"  - {finding.id} seq {finding.seq}: {finding.message}"))


@app.command()
def checkpoint(workspace: WorkspaceOpt = DEFAULT_WORKSPACE) -> None:
    """Verify the rows since the last checkpoint and sign the chain head now."""
    from birthright.audit.signing import load_or_create_audit_signer
    from birthright.db.audit import write_checkpoint

    settings = settings_for(workspace)
    signer = load_or_create_audit_signer(settings)
    with _sessions(settings) as sessions:
        cp = write_checkpoint(sessions, signer, datetime.now(UTC))
    if cp is None:
        console.print("the chain head has not moved since the last checkpoint; nothing to sign")
        return
    console.print(Text(f"signed checkpoint seq {cp.seq} hash {cp.hash} with audit key {cp.key_id}"))


@app.command("list")
def list_(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="Rows to show.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Newest rows to skip.")] = 0,
    event: Annotated[str | None, typer.Option(help="Only this event kind.")] = None,
    outcome: Annotated[
        str | None, typer.Option(help="Only this outcome: ok|refused|alert.")
    ] = None,
) -> None:
    """List audit events, newest first."""
    from birthright.db.audit import list_events

    settings = settings_for(workspace)
    with _sessions(settings) as sessions:
        records = list_events(sessions, limit=limit, offset=offset, event=event, outcome=outcome)
    table = Table(title=f"audit events ({len(records)})")
    for column in ("seq", "at (UTC)"):
        table.add_column(column, no_wrap=True)
    for column in ("event", "outcome", "code", "station", "serial", "detail"):
        table.add_column(column, overflow="fold")
    for r in records:
        style = {"refused": "yellow", "alert": "red"}.get(r.outcome, "")
        table.add_row(
            Text(str(r.seq)),
            Text(r.at.strftime("%Y-%m-%d %H:%M:%S")),
            Text(r.event),
            Text(r.outcome, style=style),
            Text(r.code or ""),
            Text(r.station_id or ""),
            Text(r.serial or ""),
            Text(_short(r.detail)),
        )
    console.print(table)


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
