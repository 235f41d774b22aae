"""`birthright workorder` commands: what each line may mint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from birthright.cli.common import DEFAULT_WORKSPACE, WorkspaceOpt, console, settings_for
from birthright.db.engine import make_engine, make_sessionmaker
from birthright.db.operations import WorkOrders
from birthright.enrollment.model import WorkOrder, WorkOrderSpec

app = typer.Typer(help="Work orders: product, line, quantity, serial range.", no_args_is_help=True)


def _work_orders(workspace: Path) -> WorkOrders:
    settings = settings_for(workspace)
    return WorkOrders(make_sessionmaker(make_engine(settings.effective_database_url)))


def _show(orders: list[WorkOrder]) -> None:
    table = Table("work order", "product", "site/line", "minted / quantity", "serials", "status")
    for o in orders:
        table.add_row(
            o.work_order_id,
            o.product,
            f"{o.site}/{o.line}",
            f"{o.minted} / {o.quantity}",
            f"{o.serial(o.serial_first)} … {o.serial(o.serial_last)}",
            o.status,
        )
    console.print(table)


@app.command("open")
def open_order(
    work_order_id: Annotated[str, typer.Argument(help="Work order id, e.g. WO-2026-0001.")],
    product: Annotated[str, typer.Option(help="Product model.")],
    site: Annotated[str, typer.Option(help="Factory site.")],
    line: Annotated[str, typer.Option(help="Production line.")],
    quantity: Annotated[int, typer.Option(min=1, help="Identities the line may mint.")],
    prefix: Annotated[str, typer.Option(help="Serial prefix.")] = "BR",
    first: Annotated[int, typer.Option(help="First serial number.")] = 1,
    last: Annotated[
        int | None,
        typer.Option(help="Last serial number (default: enough for the quantity plus 5% scrap)."),
    ] = None,
    valid_days: Annotated[int, typer.Option(min=1, help="Days the order stays valid.")] = 30,
    rate_ceiling: Annotated[
        int | None, typer.Option(help="Units/minute that raise an alert.")
    ] = None,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Open a work order for one line."""
    now = datetime.now(UTC)
    spec = WorkOrderSpec(
        work_order_id=work_order_id,
        product=product,
        site=site,
        line=line,
        quantity=quantity,
        serial_prefix=prefix,
        serial_first=first,
        serial_last=last if last is not None else first + quantity + quantity // 20,
        valid_from=now,
        valid_until=now + timedelta(days=valid_days),
        rate_ceiling_per_minute=rate_ceiling,
    )
    _show([_work_orders(workspace).open(spec, now=now)])


def _set(work_order_id: str, status: str, workspace: Path) -> None:
    _show([_work_orders(workspace).set_status(work_order_id, status, now=datetime.now(UTC))])


@app.command()
def suspend(work_order_id: str, workspace: WorkspaceOpt = DEFAULT_WORKSPACE) -> None:
    """Stop minting at once; the order can be resumed."""
    _set(work_order_id, "suspended", workspace)


@app.command()
def resume(work_order_id: str, workspace: WorkspaceOpt = DEFAULT_WORKSPACE) -> None:
    """Resume a suspended work order."""
    _set(work_order_id, "open", workspace)


@app.command()
def close(work_order_id: str, workspace: WorkspaceOpt = DEFAULT_WORKSPACE) -> None:
    """Close a work order for good."""
    _set(work_order_id, "closed", workspace)


@app.command("list")
def list_orders(workspace: WorkspaceOpt = DEFAULT_WORKSPACE) -> None:
    """Every work order with its minted count."""
    _show(_work_orders(workspace).list())
