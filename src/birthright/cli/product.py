"""`birthright product` commands: what every unit of a product must prove at enrollment."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from birthright.cli import policy_hook
from birthright.cli.common import DEFAULT_WORKSPACE, WorkspaceOpt, console, settings_for
from birthright.db.engine import make_engine, make_sessionmaker
from birthright.db.products import SqlProductPolicies
from birthright.enrollment.model import ProductPolicy

app = typer.Typer(help="Per-product enrollment policy.", no_args_is_help=True)


def _policies(workspace: Path) -> SqlProductPolicies:
    settings = settings_for(workspace)
    return SqlProductPolicies(make_sessionmaker(make_engine(settings.effective_database_url)))


def _show(policies: list[ProductPolicy]) -> None:
    table = Table("product", "genuine SE proof", "changed")
    for p in policies:
        changed = f"{p.updated_at:%Y-%m-%d %H:%M:%SZ}" if p.updated_at else ""
        table.add_row(p.product, "required" if p.require_genuine_se else "optional", changed)
    console.print(table)


@app.command("require-genuine")
def require_genuine(
    product: Annotated[str, typer.Argument(help="Product model, as in its work orders.")],
    off: Annotated[bool, typer.Option("--off", help="Stop requiring the proof (audited).")] = False,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Require every unit of PRODUCT to prove its identity key lives in a genuine secure
    element (vendor attestation, TPM); software keys and counterfeit parts are refused with
    se_not_genuine."""
    policy, changed = _policies(workspace).set_require_genuine_se(
        product, not off, now=datetime.now(UTC)
    )
    _show([policy])
    if not changed:
        console.print("(unchanged)")


@app.command("list")
def list_policies(workspace: WorkspaceOpt = DEFAULT_WORKSPACE) -> None:
    """Every product with an explicit policy (others: proof optional)."""
    _show(_policies(workspace).list())


app.add_typer(policy_hook.app, name="policy-hook")
