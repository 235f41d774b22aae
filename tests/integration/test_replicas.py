"""Two replicas — two real ``birthright serve`` processes, one of them with two workers — on one
PostgreSQL database, configured by a settings file: what one records the other serves, at once.

A unit enrolled through replica A is read, with its status and OCSP answer, through replica B;
revoked on B, it is revoked on A (status, OCSP, CRL). Both serve the same API description.
Each replica's metrics count what it answered, summed over its workers."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from birthright.ca.authority import init_workspace_ca
from birthright.db.engine import make_engine
from birthright.operators.roles import Role
from birthright.server.backend import build_backend
from birthright.server.operator_auth import SESSION_COOKIE
from birthright.settings import load_settings
from tests.conftest import free_port, operator_token
from tests.integration.burst import seed
from tests.integration.test_enrollment_api import csr_b64
from tests.integration.test_observability import Samples, ocsp_der, scrape, value

pytestmark = pytest.mark.postgres

CONSOLE_ADMIN = "console-admin"
CONSOLE_PASSWORD = secrets.token_urlsafe(18)

WO = "WO-REPLICA"
RESERVATIONS_ON_A = 6


class Replica:
    def __init__(self, config: Path, workspace: Path, *, workers: int) -> None:
        self.token = ""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = workspace / f"replica-{self.port}.out"
        with self.out.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "birthright.cli.main",
                    "serve",
                    "--config",
                    str(config),
                    "--port",
                    str(self.port),
                    "--workers",
                    str(workers),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "BIRTHRIGHT_LOG_LEVEL": "warning"},
            )

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"replica exited: {self.out.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"replica not ready: {self.out.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def replicas(postgres_url: str, tmp_path: Path) -> Iterator[tuple[Replica, Replica]]:
    ws = tmp_path / "ws"
    settings = load_settings(ws, database_url=postgres_url)
    settings.ws.create()
    init_workspace_ca(settings, now=datetime.now(UTC))
    engine = make_engine(postgres_url)
    seed(engine, stations=1, work_order=WO, quantity=50)
    engine.dispose()
    backend = build_backend(settings.model_copy(update={"tls": False, "station_auth": False}))
    token = operator_token(backend)  # one operator, valid on every replica
    backend.operators.create(CONSOLE_ADMIN, Role.ADMIN, CONSOLE_PASSWORD)
    backend.close()
    config = tmp_path / "birthright.toml"
    config.write_text(
        f'workspace = "{ws}"\ndatabase_url = "{postgres_url}"\n'
        "tls = false\nstation_auth = false\nreport_schedule = false\n"
        "audit_checkpoint_seconds = 0\nmetrics_cache_seconds = 0\n"
    )
    a = Replica(config, ws, workers=2)
    b = Replica(config, ws, workers=1)
    a.token = b.token = token
    try:
        a.wait_ready()
        b.wait_ready()
        yield a, b
    finally:
        a.stop()
        b.stop()


def test_two_replicas_serve_the_same_records(replicas: tuple[Replica, Replica]) -> None:
    a, b = replicas
    auth = {"Authorization": f"Bearer {a.token}"}
    with (
        httpx.Client(base_url=a.url, headers=auth, timeout=30) as on_a,
        httpx.Client(base_url=b.url, headers=auth, timeout=30) as on_b,
    ):
        a_before, b_before = scrape(on_a), scrape(on_b)
        # Several requests to A, so that both of its workers are likely to answer some.
        serials = []
        for i in range(RESERVATIONS_ON_A):
            r = on_a.post(
                "/v1/serials",
                json={"station_id": "st-000", "work_order_id": WO, "chip_id": f"CHIP-{i}"},
            )
            assert r.status_code == 200, r.text
            serials.append(r.json()["serial"])
        key = ec.generate_private_key(ec.SECP256R1())
        enrolled = on_a.post(
            "/v1/enrollments",
            json={
                "station_id": "st-000",
                "work_order_id": WO,
                "serial": serials[0],
                "chip_id": "CHIP-0",
                "csr": csr_b64(key),
            },
        )
        assert enrolled.status_code == 201, enrolled.text
        chain = [enrolled.json()["certificate"], *enrolled.json()["chain"]]
        serial = serials[0]

        # Read through B what A recorded.
        device = on_b.get(f"/v1/devices/{serial}")
        assert device.status_code == 200, device.text
        assert device.json()["certificate"] == chain[0]
        assert on_b.get(f"/v1/devices/{serial}/status").json()["status"] == "active"
        assert ocsp.load_der_ocsp_response(ocsp_der(on_b, chain)).certificate_status.name == "GOOD"

        # Revoke on B, see it on A: status, OCSP (cached answers are keyed by status), CRL.
        revoked = on_b.post("/v1/revocations", json={"serial": serial, "reason": "keyCompromise"})
        assert revoked.status_code == 201, revoked.text
        assert on_a.get(f"/v1/devices/{serial}/status").json()["status"] == "revoked"
        for _ in range(4):  # whichever of A's workers answers
            answer = ocsp.load_der_ocsp_response(ocsp_der(on_a, chain))
            assert answer.certificate_status.name == "REVOKED"
        cert = x509.load_pem_x509_certificate(chain[0].encode())
        crl_a = x509.load_der_x509_crl(on_a.get("/crl/issuing.crl").content)
        crl_b = x509.load_der_x509_crl(on_b.get("/crl/issuing.crl").content)
        assert crl_a.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
        assert crl_a.public_bytes(Encoding.DER) == crl_b.public_bytes(Encoding.DER)
        assert on_a.get("/openapi.json").json() == on_b.get("/openapi.json").json()
        assert on_a.get("/readyz").json() == on_b.get("/readyz").json()

        a_after, b_after = scrape(on_a), scrape(on_b)

    def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    serial_route = {"route": "/v1/serials", "method": "POST", "status_class": "2xx"}
    count = "birthright_http_request_duration_seconds_count"
    # A's exposition adds up both workers: every reservation is counted, whichever answered.
    assert moved(a_before, a_after, count, **serial_route) == RESERVATIONS_ON_A
    assert moved(a_before, a_after, "birthright_enrollments_total", outcome="issued") == 1
    assert moved(b_before, b_after, "birthright_enrollments_total", outcome="issued") == 0
    assert moved(b_before, b_after, "birthright_revocations_total", kind="single") == 1
    assert moved(a_before, a_after, "birthright_ocsp_answers_total", status="revoked") == 4
    assert moved(b_before, b_after, "birthright_ocsp_answers_total", status="good") == 1
    # Quota gauges come from the shared database: both replicas report the same.
    labels = {"work_order": WO, "product": "P1"}
    assert value(a_after, "birthright_work_order_quota_used", **labels) == 1
    assert value(b_after, "birthright_work_order_quota_used", **labels) == 1
    assert a.proc.poll() is None and b.proc.poll() is None


def test_a_console_session_opened_on_one_replica_is_good_on_the_other(
    replicas: tuple[Replica, Replica],
) -> None:
    """Sessions live in the shared database: a load balancer may send an operator's next page
    to any replica, and both show the same day."""
    a, b = replicas
    with httpx.Client(base_url=a.url, timeout=30) as on_a:
        login = on_a.post(
            "/console/login", data={"name": CONSOLE_ADMIN, "password": CONSOLE_PASSWORD}
        )
        assert login.status_code == 303, login.text
        session = on_a.cookies[SESSION_COOKIE]
        page_a = on_a.get("/console/work-orders")
    with httpx.Client(base_url=b.url, cookies={SESSION_COOKIE: session}, timeout=30) as on_b:
        page_b = on_b.get("/console/work-orders")
        assert page_b.status_code == 200, page_b.text
        assert WO in page_b.text
        assert on_b.get("/console").status_code == 200
    assert page_a.status_code == 200
    assert WO in page_a.text
    with httpx.Client(base_url=b.url, timeout=30) as stranger:  # no session: the login page
        assert stranger.get("/console/work-orders").status_code in (303, 401)
