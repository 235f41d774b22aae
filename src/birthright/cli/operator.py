"""`birthright admin create` and `birthright operator ...`: accounts made on the server machine.

There is no default password: the first admin is made here, the password typed at a hidden
prompt (twice) or read from standard input with ``--password-stdin``.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from birthright.cli.common import DEFAULT_WORKSPACE, WorkspaceOpt, console, settings_for
from birthright.db.audit_sink import SqlAuditSink
from birthright.db.engine import make_engine, make_sessionmaker
from birthright.db.operators import SqlOperatorStore
from birthright.operators.roles import Role, describe
from birthright.operators.service import OperatorService

app = typer.Typer(help="Operator accounts, roles and API tokens.", no_args_is_help=True)
admin_app = typer.Typer(help="The first administrator.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Account name (a-z 0-9 . _ -, a letter first).")]
StdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


def _service(workspace: Path) -> OperatorService:
    settings = settings_for(workspace)
    sessions = make_sessionmaker(make_engine(settings.effective_database_url))
    return OperatorService(
        store=SqlOperatorStore(sessions),
        audit=SqlAuditSink(sessions),
        clock=lambda: datetime.now(UTC),
    )


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first: str = typer.prompt("Password", hide_input=True)
    again: str = typer.prompt("Repeat password", hide_input=True)
    if first != again:
        console.print("[red]the passwords differ[/]")
        raise typer.Exit(code=2)
    return first


def _line(line: str | None) -> tuple[str | None, str | None]:
    if line is None:
        return None, None
    site, sep, name = line.partition("/")
    if not sep:
        console.print("[red]--line is SITE/LINE[/]")
        raise typer.Exit(code=2)
    return site, name


@admin_app.command("create")
def admin_create(
    name: NameArg, password_stdin: StdinOpt = False, workspace: WorkspaceOpt = DEFAULT_WORKSPACE
) -> None:
    """Create an administrator (the first one included). Run it on the server machine."""
    operator = _service(workspace).create(name, Role.ADMIN, _password(password_stdin))
    console.print(f"admin [bold]{operator.name}[/] created; log in to the console at /console")


@app.command("add")
def add(
    name: NameArg,
    role: Annotated[str, typer.Option("--role", help=", ".join(r.value for r in Role))],
    line: Annotated[
        str | None, typer.Option("--line", help="SITE/LINE, for a line operator.")
    ] = None,
    password_stdin: StdinOpt = False,
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Add an operator with one role (a line operator is assigned to one line)."""
    site, line_name = _line(line)
    service = _service(workspace)
    operator = service.create(
        name, Role.parse(role), _password(password_stdin), site=site, line=line_name
    )
    console.print(f"operator [bold]{operator.name}[/] ({operator.role.value}) created")


@app.command("disable")
def disable(name: NameArg, workspace: WorkspaceOpt = DEFAULT_WORKSPACE) -> None:
    """Disable an operator: its sessions end and its API tokens stop working (audited)."""
    _service(workspace).set_disabled(name, True)
    console.print(f"operator [bold]{name}[/] disabled")


@app.command("enable")
def enable(name: NameArg, workspace: WorkspaceOpt = DEFAULT_WORKSPACE) -> None:
    """Enable a disabled operator again (audited)."""
    _service(workspace).set_disabled(name, False)
    console.print(f"operator [bold]{name}[/] enabled")


@app.command("password")
def password(
    name: NameArg, password_stdin: StdinOpt = False, workspace: WorkspaceOpt = DEFAULT_WORKSPACE
) -> None:
    """Set a new password; the operator's sessions end (audited)."""
    _service(workspace).set_password(name, _password(password_stdin))
    console.print(f"password of [bold]{name}[/] changed")


@app.command("token")
def token(
    name: NameArg,
    label: Annotated[str, typer.Option("--label", help="What the token is for.")] = "api",
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Issue an API token acting as NAME (printed once, stored hashed): for scripts, sent as
    ``Authorization: Bearer <token>``."""
    print(_service(workspace).issue_token(name, label=label))


@app.command("list")
def list_operators(workspace: WorkspaceOpt = DEFAULT_WORKSPACE) -> None:
    """Every operator, its role, line and state."""
    table = Table("name", "role", "line", "state", "created")
    for o in _service(workspace).list():
        line = f"{o.site}/{o.line}" if o.site else ""
        state = "disabled" if o.disabled else "active"
        table.add_row(o.name, o.role.value, line, state, f"{o.created_at:%Y-%m-%d %H:%M}")
    console.print(table)


@app.command("roles")
def roles() -> None:
    """The roles and the rights each grants."""
    table = Table("role", "rights")
    for role, rights in describe():
        table.add_row(role.value, ", ".join(rights))
    console.print(table)
