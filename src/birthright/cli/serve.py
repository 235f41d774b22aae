"""`birthright serve` and `birthright db`."""

from __future__ import annotations

import typer

db_app = typer.Typer(help="Database commands", no_args_is_help=True)


def serve() -> None:
    """Start the service (being built)."""
