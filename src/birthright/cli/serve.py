"""`birthright serve` and `birthright db`."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn

from birthright.cli.common import DEFAULT_WORKSPACE, WorkspaceOpt
from birthright.db.migrate import upgrade
from birthright.errors import ConfigError
from birthright.logs import configure_logging
from birthright.settings import Settings, load_settings_from

db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="BIRTHRIGHT_CONFIG",
        help="A TOML settings file (keys as in birthright.toml; BIRTHRIGHT_* variables win).",
        dir_okay=False,
    ),
]
ServeWorkspaceOpt = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        envvar="BIRTHRIGHT_WORKSPACE",
        help="Deployment folder (default: the config file's `workspace`, else "
        f"./{DEFAULT_WORKSPACE}).",
    ),
]


@db_app.command("upgrade")
def db_upgrade(workspace: WorkspaceOpt = DEFAULT_WORKSPACE, config: ConfigOpt = None) -> None:
    """Apply the schema migrations to the configured database (safe to run concurrently)."""
    settings = load_settings_from(workspace, config_file=config, overrides={})
    upgrade(settings.effective_database_url)
    typer.echo("database schema is up to date")


@db_app.command("current")
def db_current(workspace: WorkspaceOpt = DEFAULT_WORKSPACE, config: ConfigOpt = None) -> None:
    """Print the database's schema revision and this code's; exit 1 when they differ."""
    from birthright.db.engine import make_engine
    from birthright.db.migrate import current_revision, head_revision

    settings = load_settings_from(workspace, config_file=config, overrides={})
    engine = make_engine(settings.effective_database_url)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    typer.echo(f"database at {current or 'nothing'}; code at {head}")
    if current != head:
        raise typer.Exit(code=1)


def _load(workspace: Path | None, config: Path | None, **overrides: Any) -> Settings:
    if workspace is None and config is None:
        workspace = DEFAULT_WORKSPACE
    return load_settings_from(workspace, config_file=config, overrides=overrides)


def _migrate_or_check(settings: Settings, migrate: bool | None) -> None:
    """SQLite (embedded): migrate by default. PostgreSQL (shared by replicas): only when asked
    (under the upgrade lock), else refuse to start on a schema that is not at head."""
    from birthright.db.engine import make_engine
    from birthright.db.migrate import current_revision, head_revision

    url = settings.effective_database_url
    if migrate is None:
        migrate = url.startswith("sqlite")
    if migrate:
        upgrade(url)
        return
    engine = make_engine(url)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    if current != head_revision():
        raise ConfigError(
            f"the database schema is at {current or 'nothing'}, this code needs "
            f"{head_revision()}: run `birthright db upgrade` first",
            code="schema_not_at_head",
        )


def _metrics_dir(settings: Settings) -> Path:
    """A fresh folder for the workers' metric files (old files would add stale counts)."""
    folder = settings.ws.root / "run" / f"metrics-{settings.port}"  # one per replica
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    return folder


def serve(
    workspace: ServeWorkspaceOpt = None,
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="Worker processes (default: settings).")
    ] = None,
    migrate: Annotated[
        bool | None,
        typer.Option(
            "--migrate/--no-migrate",
            help="Apply migrations first (default: on SQLite yes; on PostgreSQL no, and the "
            "schema must be at head: run `birthright db upgrade`).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start the identity service (API docs at /docs, metrics at /metrics, the operator console
    at /console: make its first admin with `birthright admin create NAME`)."""
    from birthright.audit.signing import load_or_create_audit_signer
    from birthright.ca.station import server_tls_files
    from birthright.db.audit import AuditCheckpointer
    from birthright.server.backend import build_backend, utc_now
    from birthright.server.tls import mtls_uvicorn_options, mtls_worker_options

    overrides: dict[str, object] = {}
    for key, value in (("host", host), ("port", port), ("workers", workers)):
        if value is not None:
            overrides[key] = value
    settings = _load(workspace, config, **overrides)
    configure_logging(
        settings.log_level, file=settings.ws.log_dir / "service.log", fmt=settings.log_format
    )
    _migrate_or_check(settings, migrate)
    # Built here even with workers: every setting, file and key is checked before any
    # worker starts, so a misconfiguration is one clear error and a non-zero exit.
    backend = build_backend(settings)
    tls_files = server_tls_files(settings.ws) if settings.tls else None
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
    # EST re-enrollment by a unit's own certificate needs the device issuing CA (ADR 0014)
    devices = backend.chain[:1] if settings.est else ()
    try:
        if settings.workers == 1:
            tls = mtls_uvicorn_options(tls_files, also_trust=devices) if tls_files else {}
            _serve_one(settings, backend, tls)
        else:
            tls = mtls_worker_options(settings.ws.root, also_trust=devices) if tls_files else {}
            _serve_workers(settings, tls)
    finally:
        stop.set()
        backend.close()


def _serve_one(settings: Settings, backend: Any, tls_options: dict[str, Any]) -> None:
    from birthright.server.app import create_app

    uvicorn.run(
        create_app(backend),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # ours (birthright.access) logs route templates, never raw paths
        **tls_options,
    )


def _serve_workers(settings: Settings, tls_options: dict[str, Any]) -> None:
    """N worker processes on one socket (uvicorn's supervisor restarts a worker that dies);
    metrics of all of them are summed through the shared multiprocess folder."""
    from birthright.observability.metrics import MULTIPROC_ENV
    from birthright.server.worker import WORKER_SETTINGS_ENV

    os.environ[MULTIPROC_ENV] = str(_metrics_dir(settings))
    os.environ[WORKER_SETTINGS_ENV] = settings.model_dump_json()
    uvicorn.run(
        "birthright.server.worker:worker_app",
        factory=True,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # ours (birthright.access) logs route templates, never raw paths
        # A worker builds a whole backend (CA keys behind a slow KDF) before it answers
        # uvicorn's health check; on a busy machine that outlasts the default 5 s.
        timeout_worker_healthcheck=60,
        **tls_options,
    )
