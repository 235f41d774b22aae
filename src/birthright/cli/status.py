"""`birthright serve-status`: the OCSP and CRL responder over plain HTTP."""

from __future__ import annotations

import os
from typing import Annotated

import typer
import uvicorn

from birthright.cli.common import DEFAULT_WORKSPACE, WorkspaceOpt, settings_for
from birthright.logs import configure_logging


def serve_status(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind (plain HTTP).")] = 8480,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
) -> None:
    """Answer OCSP and serve the CRL over plain HTTP (RFC 5019), beside `birthright serve`."""
    from birthright.server.status_responder import WORKSPACE_ENV, build_revocation

    settings = settings_for(workspace)
    configure_logging(settings.log_level, file=settings.ws.log_dir / "status.log")
    # Fail here, once, with a clear error, rather than in every worker.
    _revocation, engine = build_revocation(settings)
    engine.dispose()
    os.environ[WORKSPACE_ENV] = str(settings.ws.root)
    uvicorn.run(
        "birthright.server.status_responder:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http="httptools",
        loop="uvloop",
        access_log=False,
        log_config=None,
        # A worker loads the issuing CA's key at start (a deliberately slow KDF); on a busy
        # machine that outlasts uvicorn's default 5 s health check, which would restart it
        # for ever.
        timeout_worker_healthcheck=60,
    )
