"""The operator API guard over real HTTP: no credentials 401, a role without the right 403,
both audited; API tokens per role; the CLI makes accounts without any default password."""

from __future__ import annotations

import dataclasses

import httpx
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from birthright.ca.authority import FactoryCa
from birthright.cli.main import app as main_app
from birthright.db.audit import list_events
from birthright.operators.roles import Role
from birthright.operators.tokens import digest
from birthright.server.backend import build_backend
from birthright.server.operator_auth import SESSION_COOKIE
from birthright.settings import Settings
from tests.conftest import (
    ServedBackend,
    ThreadServer,
    free_port,
    operator_line_token,
    operator_token,
)

REVOKE = {"serial": "BRT-1", "reason": "keyCompromise"}
SEAL = {"purpose": "wifi", "payload": ""}
#: (method, path, body) of operator endpoints, one per guarded concern.
GUARDED = [
    ("POST", "/v1/revocations", {"serial": "BRT-1", "reason": "keyCompromise"}),
    ("POST", "/v1/recalls/preview", {"selection": {"all": True}}),
    ("GET", "/v1/reports", None),
    ("POST", "/v1/shipments", None),
    ("GET", "/v1/products/policies", None),
    ("GET", "/v1/devices/status-counts", None),
    ("GET", "/v1/entitlements?serial=BRT-1", None),
    ("POST", "/v1/devices/BRT-1/sealed", {"purpose": "wifi", "payload": ""}),
]


def call(
    served: ServedBackend, method: str, path: str, body: object, **headers: str
) -> httpx.Response:
    return httpx.request(method, served.url + path, json=body, headers=headers, timeout=10)


@pytest.mark.parametrize(("method", "path", "body"), GUARDED, ids=[g[1] for g in GUARDED])
def test_no_credentials_get_401_and_the_refusal_is_audited(
    served: ServedBackend, method: str, path: str, body: object
) -> None:
    r = call(served, method, path, body)
    assert r.status_code == 401, r.text
    assert r.json()["code"] == "operator_unauthenticated"
    [event] = list_events(served.backend.sessions, event="operator.request", limit=1)
    assert event.outcome == "refused" and event.code == "operator_unauthenticated"


@pytest.mark.parametrize("header", ["Bearer brt_not-a-token", "Basic YWRtaW46YWRtaW4=", "Bearer"])
def test_a_bad_authorization_header_is_401(served: ServedBackend, header: str) -> None:
    r = call(served, "GET", "/v1/reports", None, Authorization=header)
    assert (r.status_code, r.json()["code"]) == (401, "operator_unauthenticated")


@pytest.mark.parametrize(
    ("role", "method", "path", "body", "status"),
    [
        (Role.AUDITOR, "GET", "/v1/reports", None, 200),
        (Role.AUDITOR, "POST", "/v1/revocations", REVOKE, 403),
        (Role.LINE_OPERATOR, "GET", "/v1/reports", None, 403),
        (Role.LINE_OPERATOR, "GET", "/v1/devices/status-counts", None, 200),
        (Role.PRODUCTION_MANAGER, "POST", "/v1/revocations", REVOKE, 404),
        (Role.PRODUCTION_MANAGER, "POST", "/v1/devices/BRT-1/sealed", SEAL, 403),
    ],
    ids=[
        "auditor-reads", "auditor-revokes", "line-reports", "line-counts", "pm-revokes", "pm-seals"
    ],
)  # fmt: skip
def test_each_role_gets_exactly_its_rights(
    served: ServedBackend, role: Role, method: str, path: str, body: object, status: int
) -> None:
    if role is Role.LINE_OPERATOR:
        token = operator_line_token(served.backend, "line-op", site="site1", line="line1")
    else:
        token = operator_token(served.backend, f"op-{role.value.replace('_', '-')}", role)
    r = call(served, method, path, body, Authorization=f"Bearer {token}")
    assert r.status_code == status, r.text
    if status == 403:
        assert r.json()["code"] == "operator_forbidden"
        [event] = list_events(served.backend.sessions, event="operator.action", limit=1)
        assert event.outcome == "refused"


def test_a_disabled_operators_token_stops_working(served: ServedBackend) -> None:
    token = operator_token(served.backend, "leaver", Role.PRODUCTION_MANAGER)
    assert call(served, "GET", "/v1/reports", None, Authorization=f"Bearer {token}").is_success
    served.backend.operators.set_disabled("leaver", True)
    r = call(served, "GET", "/v1/reports", None, Authorization=f"Bearer {token}")
    assert r.status_code == 401


def test_the_cli_creates_the_first_admin_from_stdin_with_no_default(
    served: ServedBackend, settings: Settings
) -> None:
    env = {"BIRTHRIGHT_DATABASE_URL": settings.effective_database_url}
    cli = CliRunner()
    weak = cli.invoke(
        main_app, ["admin", "create", "root", "--password-stdin", "-w", str(settings.workspace)],
        input="short\n", env=env,
    )  # fmt: skip
    assert weak.exit_code != 0
    made = cli.invoke(
        main_app, ["admin", "create", "root", "--password-stdin", "-w", str(settings.workspace)],
        input="a sound admin passphrase\n", env=env,
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    principal, _session = served.backend.operators.login("root", "a sound admin passphrase")
    assert principal.operator.role is Role.ADMIN
    added = cli.invoke(
        main_app,
        ["operator", "add", "lena", "--role", "line_operator", "--line", "site1/line1",
         "--password-stdin", "-w", str(settings.workspace)],
        input="a line operator passphrase\n", env=env,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    token = cli.invoke(
        main_app, ["operator", "token", "lena", "-w", str(settings.workspace)], env=env
    )
    assert token.exit_code == 0, token.output
    r = call(served, "GET", "/v1/reports", None, Authorization=f"Bearer {token.stdout.strip()}")
    assert (r.status_code, r.json()["code"]) == (403, "operator_forbidden")
    events = {e.event for e in list_events(served.backend.sessions, limit=50)}
    assert {"operator.created", "operator.login", "operator.token_issued"} <= events


def test_operator_auth_is_on_by_default() -> None:
    assert Settings().operator_auth is True
    assert Settings().tls is True  # and so the session cookie is Secure


def test_the_session_cookie_is_httponly_strict_secure_and_stored_hashed(
    settings: Settings, factory_ca: FactoryCa
) -> None:
    backend = dataclasses.replace(build_backend(settings, ca=factory_ca), secure_cookies=True)
    port = free_port()
    server = ThreadServer(backend, port)
    server.start()
    try:
        backend.operators.create("ada", Role.ADMIN, "a sound admin passphrase")
        r = httpx.post(
            f"http://127.0.0.1:{port}/console/login",
            data={"name": "ada", "password": "a sound admin passphrase"},
            timeout=10,
        )
        assert r.status_code == 303, r.text
        cookie = r.headers["set-cookie"]
        session_id = r.cookies[SESSION_COOKIE]
        for flag in ("httponly", "samesite=strict", "secure", "path=/"):
            assert flag in cookie.lower(), cookie
        with backend.engine.connect() as conn:
            stored = conn.execute(text("SELECT digest FROM operator_sessions")).scalars().all()
        assert stored == [digest(session_id)]
        assert r.headers["content-security-policy"].startswith("default-src 'none'")
    finally:
        server.stop()
        backend.close()
