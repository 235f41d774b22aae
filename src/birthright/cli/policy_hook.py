"""`birthright product policy-hook` commands: a product's self-hosted enrollment webhook."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from birthright.cli.common import DEFAULT_WORKSPACE, WorkspaceOpt, console, settings_for
from birthright.db.engine import make_engine, make_sessionmaker
from birthright.db.policy_hooks import SqlPolicyHooks
from birthright.policyhook import HookConfig

app = typer.Typer(
    help="A product's policy hook: asked before every issuance, failing closed.",
    no_args_is_help=True,
)


def _hooks(workspace: Path) -> SqlPolicyHooks:
    settings = settings_for(workspace)
    return SqlPolicyHooks(make_sessionmaker(make_engine(settings.effective_database_url)))


def _show(hooks: list[HookConfig]) -> None:
    table = Table("product", "url", "time limit")
    for h in hooks:
        table.add_row(h.product, h.url, f"{h.timeout_ms} ms")
    console.print(table)


@app.command("set")
def set_hook(
    product: Annotated[str, typer.Argument(help="Product model, as in its work orders.")],
    url: Annotated[str, typer.Option("--url", help="Where the hook listens (http or https).")],
    key: Annotated[
        Path, typer.Option("--key", help="The hook's EC P-256 public key (PEM).", exists=True)
    ],
    timeout_ms: Annotated[
        int, typer.Option("--timeout-ms", help="Time limit for the hook's answer.")
    ] = 500,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Ask URL before issuing any unit of PRODUCT; only answers signed by KEY count, and no
    valid answer within the time limit refuses the unit (audited)."""
    hook = _hooks(workspace).set(
        product,
        url=url,
        public_key_pem=key.read_bytes(),
        timeout_ms=timeout_ms,
        now=datetime.now(UTC),
    )
    _show([hook])


@app.command("clear")
def clear_hook(
    product: Annotated[str, typer.Argument(help="Product model.")],
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Stop asking a hook for PRODUCT (audited)."""
    removed = _hooks(workspace).clear(product, now=datetime.now(UTC))
    console.print(f"policy hook of {product} {'removed' if removed else 'was not set'}")


@app.command("list")
def list_hooks(workspace: WorkspaceOpt = DEFAULT_WORKSPACE) -> None:
    """Every product with a policy hook."""
    _show(_hooks(workspace).list())
