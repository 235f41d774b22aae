"""Shared CLI plumbing: options, settings at the entry point, errors rendered for people."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from birthright.errors import BirthrightError
from birthright.settings import Settings, load_settings

console = Console()
err_console = Console(stderr=True)

DEFAULT_WORKSPACE = Path("birthright-workspace")

WorkspaceOpt = Annotated[
    Path,
    typer.Option(
        "--workspace",
        "-w",
        envvar="BIRTHRIGHT_WORKSPACE",
        help="Deployment folder: settings, SQLite database, dev CA material.",
    ),
]


def settings_for(workspace: Path, **overrides: Any) -> Settings:
    return load_settings(workspace, **overrides)


def fail(error: BirthrightError) -> typer.Exit:
    err_console.print(f"[bold red]error[/] {escape(f'[{error.code}]')} {escape(error.message)}")
    return typer.Exit(code=2)


def run_cli(app: typer.Typer) -> None:
    try:
        app()
    except BirthrightError as e:
        err_console.print(f"[bold red]error[/] {escape(f'[{e.code}]')} {escape(e.message)}")
        sys.exit(2)
