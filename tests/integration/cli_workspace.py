"""A CLI-made workspace (``ca init``, ``db upgrade``) served on 127.0.0.1 with one line open:
the setting of the command-line tests that act on units enrolled over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from birthright.server.backend import build_backend
from birthright.settings import load_settings
from tests.conftest import ServedBackend, ThreadServer, free_port, seed_line
from tests.integration.test_ca_cli import cli
from tests.integration.test_enrollment_api import STATION, WO


@contextmanager
def served_cli_workspace(ws: Path) -> Iterator[httpx.Client]:
    assert cli("ca", "init", "-w", ws).exit_code == 0
    assert cli("db", "upgrade", "-w", ws).exit_code == 0
    settings = load_settings(ws, port=free_port(), tls=False, station_auth=False)
    backend = build_backend(settings)
    server = ThreadServer(backend, settings.port)
    server.start()
    try:
        served = ServedBackend(backend, f"http://127.0.0.1:{settings.port}")
        seed_line(served, station_id=STATION, work_order_id=WO)
        with httpx.Client(base_url=served.url, headers=served.auth, timeout=30) as api:
            yield api
    finally:
        server.stop()
        backend.close()
