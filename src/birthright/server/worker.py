"""The app factory of one ``birthright serve --workers N`` worker process.

``serve`` validates the settings once, then hands them to each worker (a freshly spawned
interpreter) as JSON in ``WORKER_SETTINGS_ENV``; the worker sets up its logs, builds its own
backend (database pool, CA key handle) and app. Nothing is shared between workers but the
listening socket and the metrics folder.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from birthright.errors import ConfigError
from birthright.logs import configure_logging
from birthright.settings import Settings

#: Not ``BIRTHRIGHT_``-prefixed: it is no setting of its own, it carries all of them.
WORKER_SETTINGS_ENV = "_BIRTHRIGHT_WORKER_SETTINGS"


def worker_app() -> FastAPI:
    from birthright.server.app import create_app
    from birthright.server.backend import build_backend

    raw = os.environ.get(WORKER_SETTINGS_ENV)
    if not raw:
        raise ConfigError(
            f"{WORKER_SETTINGS_ENV} is not set: start workers with `birthright serve`"
        )
    settings = Settings.model_validate_json(raw)
    configure_logging(
        settings.log_level, file=settings.ws.log_dir / "service.log", fmt=settings.log_format
    )
    return create_app(build_backend(settings))
