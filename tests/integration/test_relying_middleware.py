"""The reference relying-service middleware in front of a tiny FastAPI app, over real HTTP,
with our service as the status source: live units of our CA in, everyone else out."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import FastAPI, Request

from birthright.ca.authority import FactoryCa
from birthright.deviceauth.token import build_token
from birthright.relying import DeviceAuthMiddleware, HttpStatusSource
from tests.conftest import ServedBackend, free_port
from tests.integration.test_attestation_api import Unit, make_unit
from tests.integration.test_attestation_api import api as api
from tests.integration.test_device_auth_api import foreign_chain, signer

AUD = "fleet-api"


def relying_app(factory_ca: FactoryCa, status_url: str) -> FastAPI:
    app = FastAPI()

    @app.get("/telemetry")
    def telemetry(request: Request) -> dict[str, str]:
        return {"device": request.state.device_serial}

    app.add_middleware(
        DeviceAuthMiddleware,
        roots=[factory_ca.root_cert],
        audience=AUD,
        status=HttpStatusSource(status_url),
        clock=lambda: datetime.now(UTC),
    )
    return app


@contextmanager
def serve(app: FastAPI) -> Iterator[httpx.Client]:
    """``app`` on uvicorn, 127.0.0.1, in a thread; a client for it."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "relying service did not start"
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def relying(served: ServedBackend, factory_ca: FactoryCa) -> Iterator[httpx.Client]:
    with serve(relying_app(factory_ca, served.url)) as client:
        yield client


def pem_to_der(pems: list[str]) -> str:
    certs = [x509.load_pem_x509_certificate(c.encode()) for c in pems]
    return ",".join(base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in certs)


def der_chain(unit: Unit) -> str:
    return pem_to_der(unit.chain[:2])


def credentials(
    relying: httpx.Client,
    unit: Unit,
    *,
    audience: str = AUD,
    now: datetime | None = None,
    chain: str | None = None,
) -> dict[str, str]:
    r = relying.post("/device-auth/challenge", json={"serial": unit.serial})
    assert r.status_code == 201, r.text
    assert r.json()["audience"] == AUD
    token = build_token(
        nonce=r.json()["nonce"],
        serial=unit.serial,
        audience=audience,
        now=now or datetime.now(UTC),
        sign=signer(unit.key),
    )
    return {
        "Authorization": "DeviceToken " + base64.urlsafe_b64encode(token).decode().rstrip("="),
        "X-Device-Chain": chain or der_chain(unit),
    }


def refused(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["code"]


def test_a_live_unit_gets_in_and_its_token_serves_until_revoked(
    api: httpx.Client, relying: httpx.Client
) -> None:
    unit = make_unit(api, "CHIP-A")
    headers = credentials(relying, unit)
    for _ in range(2):  # the same token serves repeated requests within its lifetime
        r = relying.get("/telemetry", headers=headers)
        assert r.status_code == 200 and r.json() == {"device": unit.serial}, r.text
    api.post("/v1/revocations", json={"serial": unit.serial, "reason": "keyCompromise"})
    assert refused(relying.get("/telemetry", headers=headers)) == (403, "device_revoked")


def test_outsiders_are_refused(api: httpx.Client, relying: httpx.Client) -> None:
    a, b = make_unit(api, "CHIP-A"), make_unit(api, "CHIP-B")
    cases = {
        "no credentials": ({}, "device_auth_missing"),
        "other audience": (credentials(relying, a, audience="birthright"), "device_auth_audience"),
        "expired": (
            credentials(relying, a, now=datetime.now(UTC) - timedelta(minutes=10)),
            "device_auth_expired",
        ),
        "another CA": (
            credentials(relying, a, chain=pem_to_der(foreign_chain(a))),
            "device_untrusted",
        ),
        "another unit's chain": (credentials(relying, a, chain=der_chain(b)), "device_untrusted"),
    }
    for name, (headers, code) in cases.items():
        r = relying.get("/telemetry", headers=headers)
        assert (r.status_code, r.json()["code"]) == (401, code), name


def test_a_nonce_serves_one_token_only(api: httpx.Client, relying: httpx.Client) -> None:
    unit = make_unit(api, "CHIP-A")
    r = relying.post("/device-auth/challenge", json={"serial": unit.serial})
    nonce = r.json()["nonce"]
    chain = der_chain(unit)

    def headers(issued: datetime) -> dict[str, str]:
        token = build_token(
            nonce=nonce, serial=unit.serial, audience=AUD, now=issued, sign=signer(unit.key)
        )
        b64 = base64.urlsafe_b64encode(token).decode().rstrip("=")
        return {"Authorization": f"DeviceToken {b64}", "X-Device-Chain": chain}

    now = datetime.now(UTC)
    assert relying.get("/telemetry", headers=headers(now)).status_code == 200
    second = relying.get("/telemetry", headers=headers(now - timedelta(seconds=1)))
    assert refused(second) == (401, "device_auth_replayed")


def test_an_unreachable_status_source_is_indeterminate_not_a_pass(
    api: httpx.Client, factory_ca: FactoryCa
) -> None:
    unit = make_unit(api, "CHIP-A")
    app = relying_app(factory_ca, f"http://127.0.0.1:{free_port()}")  # nobody listens there
    with serve(app) as relying:
        r = relying.get("/telemetry", headers=credentials(relying, unit))
    assert refused(r) == (503, "device_status_unavailable")
