"""`birthright serve` and `birthright db`."""

from __future__ import annotations

import threading
from typing import Annotated, Any

import typer
import uvicorn

from birthright.cli.common import DEFAULT_WORKSPACE, WorkspaceOpt, settings_for
from birthright.db.migrate import upgrade
from birthright.logs import configure_logging

db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(workspace: WorkspaceOpt = DEFAULT_WORKSPACE) -> None:
    """Apply the schema migrations to the configured database."""
    settings = settings_for(workspace)
    upgrade(settings.effective_database_url)
    typer.echo("database schema is up to date")


def serve(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
    migrate: Annotated[bool, typer.Option(help="Apply migrations before serving.")] = True,
) -> None:
    """Start the identity service on the workspace (API docs at /docs, the operator console
    at /console: make its first admin with `birthright admin create NAME`)."""
    from birthright.audit.signing import load_or_create_audit_signer
    from birthright.ca.station import server_tls_files
    from birthright.db.audit import AuditCheckpointer
    from birthright.server.app import create_app
    from birthright.server.backend import build_backend, utc_now
    from birthright.server.tls import mtls_uvicorn_options

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = settings_for(workspace, **overrides)
    configure_logging(settings.log_level, file=settings.ws.log_dir / "service.log")
    if migrate:
        upgrade(settings.effective_database_url)
    backend = build_backend(settings)
    stop = threading.Event()
    if settings.audit_checkpoint_seconds > 0:
        checkpointer = AuditCheckpointer(
            sessions=backend.sessions, signer=load_or_create_audit_signer(settings), clock=utc_now
        )
        threading.Thread(
            target=checkpointer.run_forever,
            args=(settings.audit_checkpoint_seconds, stop),
            daemon=True,
            name="audit-checkpointer",
        ).start()
    tls_options: dict[str, Any] = {}
    if settings.tls:
        tls_options = mtls_uvicorn_options(server_tls_files(settings.ws))
    try:
        uvicorn.run(
            create_app(backend),
            host=settings.host,
            port=settings.port,
            log_config=None,
            **tls_options,
        )
    finally:
        stop.set()
        backend.close()
