"""Shared fixtures: real databases (SQLite file, PostgreSQL), a real CA, real HTTP."""

from __future__ import annotations

import functools
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import text

from birthright.ca.authority import FactoryCa, init_workspace_ca
from birthright.db.engine import make_engine
from birthright.db.migrate import upgrade
from birthright.db.operators import SqlOperatorStore
from birthright.operators.model import Operator
from birthright.operators.passwords import hash_password
from birthright.operators.roles import Role
from birthright.server.app import create_app
from birthright.server.backend import Backend, build_backend
from birthright.settings import Settings, load_settings

PG_ENV = "BIRTHRIGHT_TEST_DATABASE_URL"

#: After the whole suite, scan temp folders, databases and core dumps for leaked secrets.
pytest_plugins = ["tests.sessionscan"]


def _database_params() -> list[object]:
    marks = [] if os.environ.get(PG_ENV) else [pytest.mark.skip(reason=f"{PG_ENV} not set")]
    if os.environ.get("CI") and not os.environ.get(PG_ENV):
        marks = []  # in CI a missing PostgreSQL is a failure, not a skip
    return ["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, *marks])]


def _reset_postgres(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture
def postgres_url() -> str:
    """PostgreSQL alone, fresh schema: for behaviour only a multi-writer database has."""
    url = os.environ.get(PG_ENV, "")
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} must point at PostgreSQL in CI")
        pytest.skip(f"{PG_ENV} not set")
    _reset_postgres(url)
    upgrade(url)
    return url


@pytest.fixture(params=_database_params())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'birthright.db'}"
    else:
        url = os.environ.get(PG_ENV, "")
        if not url:
            pytest.fail(f"{PG_ENV} must point at PostgreSQL in CI")
        _reset_postgres(url)
    upgrade(url)
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    ws = tmp_path / "ws"
    # Logic tests speak plain HTTP with station authentication off; the station-identity,
    # demo and benchmark paths run the full mutual TLS + signed-request stack.
    s = load_settings(
        ws,
        database_url=database_url,
        port=free_port(),
        tls=False,
        station_auth=False,
        report_schedule=False,
    )
    s.ws.create()
    return s


@pytest.fixture
def factory_ca(settings: Settings) -> FactoryCa:
    return init_workspace_ca(settings, now=datetime.now(UTC))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServedBackend:
    """A running service, and an admin operator's API token for its operator endpoints."""

    def __init__(self, backend: Backend, url: str) -> None:
        self.backend = backend
        self.url = url
        self.token = operator_token(backend)

    @property
    def auth(self) -> dict[str, str]:
        """Headers that authenticate an operator request as the test admin."""
        return {"Authorization": f"Bearer {self.token}"}


TEST_ADMIN = "test-admin"


@functools.cache
def _test_password_hash() -> str:
    return hash_password(secrets.token_urlsafe(24))  # nobody logs in with it: tokens only


def operator_token(backend: Backend, name: str = TEST_ADMIN, role: Role = Role.ADMIN) -> str:
    """An API token of operator ``name`` (made with ``role`` if it is new)."""
    store = SqlOperatorStore(backend.sessions)
    if store.credentials(name) is None:
        operator = Operator(name=name, role=role, created_at=datetime.now(UTC))
        store.add(operator, _test_password_hash())
    return backend.operators.issue_token(name, label="tests")


def operator_line_token(backend: Backend, name: str, *, site: str, line: str) -> str:
    """An API token of a line operator assigned to ``site``/``line``."""
    store = SqlOperatorStore(backend.sessions)
    if store.credentials(name) is None:
        operator = Operator(
            name=name, role=Role.LINE_OPERATOR, created_at=datetime.now(UTC), site=site, line=line
        )
        store.add(operator, _test_password_hash())
    return backend.operators.issue_token(name, label="tests")


class ThreadServer:
    """uvicorn serving ``backend`` on 127.0.0.1:``port`` in a thread of this process."""

    def __init__(self, backend: Backend, port: int, **options: Any) -> None:
        config = uvicorn.Config(
            create_app(backend),
            host="127.0.0.1",
            port=port,
            log_config=None,
            log_level="warning",
            **options,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=10)


def serve_backend(
    settings: Settings, factory_ca: FactoryCa, **overrides: object
) -> Iterator[ServedBackend]:
    """The real service on 127.0.0.1 over HTTP, in a thread of this process, built from
    ``settings`` with ``overrides``; stopped and closed when the generator ends."""
    backend = build_backend(settings.model_copy(update=overrides), ca=factory_ca)
    server = ThreadServer(backend, settings.port)
    server.start()
    try:
        yield ServedBackend(backend, f"http://127.0.0.1:{settings.port}")
    finally:
        server.stop()
        backend.close()


@pytest.fixture
def served(settings: Settings, factory_ca: FactoryCa) -> Iterator[ServedBackend]:
    """The real service on 127.0.0.1 over HTTP, in a thread of this process."""
    yield from serve_backend(settings, factory_ca)


def seed_line(
    served: ServedBackend,
    *,
    station_id: str,
    work_order_id: str = "WO-TEST",
    quantity: int = 100,
    site: str = "site1",
    line: str = "line1",
) -> None:
    """Register a station and open a work order for its line, as an operator would."""
    from datetime import timedelta

    from birthright.db.engine import make_sessionmaker
    from birthright.db.operations import WorkOrders
    from birthright.enrollment.model import WorkOrderSpec

    now = datetime.now(UTC)
    served.backend.operations.register_station(station_id, site=site, line=line, now=now)
    WorkOrders(make_sessionmaker(served.backend.engine)).open(
        WorkOrderSpec(
            work_order_id=work_order_id,
            product="BR-TEST",
            site=site,
            line=line,
            quantity=quantity,
            serial_prefix="BRT",
            serial_first=1,
            serial_last=quantity * 2,
            valid_from=now - timedelta(minutes=1),
            valid_until=now + timedelta(days=1),
        ),
        now=now,
    )
