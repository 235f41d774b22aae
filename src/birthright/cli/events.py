"""`birthright events`: webhook subscriptions of relying services, and their deliveries.

These act on the workspace's database directly, as an operator on the backend host would;
the running service's dispatcher delivers (ADR 0012).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from birthright.attest.keys import public_path
from birthright.cli.common import DEFAULT_WORKSPACE, WorkspaceOpt, console, settings_for
from birthright.db.engine import make_engine, make_sessionmaker
from birthright.db.events import SqlEventStore
from birthright.events.model import EVENT_TYPES
from birthright.events.service import SubscriptionService
from birthright.events.signing import EVENT_KEY

app = typer.Typer(
    help="Signed webhooks of fleet events for relying services.", no_args_is_help=True
)
TYPES_HELP = "Event type (repeat): " + ", ".join(EVENT_TYPES) + "."


def _service(workspace: Path) -> SubscriptionService:
    settings = settings_for(workspace)
    sessions = make_sessionmaker(make_engine(settings.effective_database_url))
    return SubscriptionService(store=SqlEventStore(sessions), clock=lambda: datetime.now(UTC))


@app.command("subscribe")
def subscribe(
    url: Annotated[str, typer.Argument(help="http(s) URL that receives the POSTs.")],
    event_type: Annotated[list[str], typer.Option("--type", "-t", help=TYPES_HELP)],
    description: Annotated[str, typer.Option(help="A note for operators.")] = "",
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Subscribe a webhook; deliveries are signed with the service's event key."""
    made = _service(workspace).subscribe(url, event_type, description=description)
    console.print(f"{made.subscription_id} {made.url} {','.join(made.event_types)}")


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines.")] = False,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Every subscription."""
    found = _service(workspace).all()
    if as_json:
        for s in found:
            row = {"subscription_id": s.subscription_id, "url": s.url}
            typer.echo(json.dumps({**row, "event_types": list(s.event_types)}))
        return
    table = Table("id", "url", "event types", "created")
    for s in found:
        table.add_row(s.subscription_id, s.url, ", ".join(s.event_types), str(s.created_at))
    console.print(table)


@app.command("unsubscribe")
def unsubscribe(
    subscription_id: Annotated[str, typer.Argument(help="sub_... id.")],
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Remove a subscription; its undelivered deliveries are dropped."""
    _service(workspace).unsubscribe(subscription_id)
    console.print(f"{subscription_id} removed")


@app.command("deliveries")
def deliveries(
    subscription_id: Annotated[str, typer.Argument(help="sub_... id.")],
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Recent deliveries of one subscription: delivered, pending (retrying) or dead."""
    table = Table("delivery", "event", "type", "status", "attempts", "last error")
    for d in _service(workspace).deliveries(subscription_id, limit=limit):
        colour = {"delivered": "green", "pending": "yellow"}.get(d.status, "red")
        table.add_row(
            str(d.delivery_id), d.event_id, d.event_type, f"[{colour}]{d.status}[/]",
            str(d.attempts), d.last_error or "",
        )  # fmt: skip
    console.print(table)


@app.command("redeliver")
def redeliver(
    subscription_id: Annotated[str, typer.Argument(help="sub_... id.")],
    delivery_id: Annotated[int, typer.Argument(help="A dead delivery's id.")],
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Try a dead-lettered delivery again, from its first attempt."""
    _service(workspace).redeliver(subscription_id, delivery_id)
    console.print(f"delivery {delivery_id} is due again")


@app.command("key")
def key(workspace: WorkspaceOpt = DEFAULT_WORKSPACE) -> None:
    """The public key receivers verify deliveries with (PEM), once the service has run."""
    path = public_path(settings_for(workspace).ws, EVENT_KEY)
    if not path.exists():
        raise typer.BadParameter(f"{path} does not exist yet: start the service once")
    typer.echo(path.read_text(), nl=False)
