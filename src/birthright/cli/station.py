"""`birthright station` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="station commands", no_args_is_help=True)
