"""`birthright ca` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="ca commands", no_args_is_help=True)
