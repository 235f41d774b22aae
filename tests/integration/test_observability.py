"""Metrics, request ids, JSON access logs, liveness and readiness over real HTTP on 127.0.0.1,
on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterator
from ipaddress import ip_network
from pathlib import Path

import httpx
import pytest
from alembic import command
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from prometheus_client.parser import text_string_to_metric_families

from birthright.ca.authority import FactoryCa
from birthright.db.migrate import alembic_config
from birthright.logs import configure_logging
from birthright.observability.readiness import Observability
from birthright.server.backend import build_backend
from birthright.settings import Settings
from tests.conftest import ServedBackend, ThreadServer, free_port, seed_line, serve_backend
from tests.integration.test_enrollment_api import STATION, WO
from tests.integration.test_revocation_api import attest, make_unit
from tests.leakscan import scan_tree

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(api: httpx.Client) -> Samples:
    r = api.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def observed(settings: Settings, factory_ca: FactoryCa) -> Iterator[ServedBackend]:
    """The real service, its quota gauges read afresh on every scrape."""
    yield from serve_backend(settings, factory_ca, metrics_cache_seconds=0)


@pytest.fixture
def api(observed: ServedBackend) -> Iterator[httpx.Client]:
    seed_line(observed, station_id=STATION, work_order_id=WO, quantity=100)
    with httpx.Client(base_url=observed.url, headers=observed.auth, timeout=30) as client:
        yield client


def ocsp_der(api: httpx.Client, pem_chain: list[str]) -> bytes:
    cert, issuer = (x509.load_pem_x509_certificate(p.encode()) for p in pem_chain[:2])
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()  # noqa: S303
    r = api.post(
        "/ocsp",
        content=request.public_bytes(Encoding.DER),
        headers={"content-type": "application/ocsp-request"},
    )
    assert r.status_code == 200
    return r.content


def test_counters_move_with_real_requests(api: httpx.Client) -> None:
    before = scrape(api)
    unit = make_unit(api, "CHIP-M1")
    assert attest(api, unit)["verdict"] == "pass"
    unknown_order = api.post(
        "/v1/serials", json={"station_id": STATION, "work_order_id": "WO-NONE", "chip_id": "C9"}
    )
    assert unknown_order.status_code >= 400
    refused_code = unknown_order.json()["code"]
    assert api.get(f"/v1/devices/{unit.serial}/status").status_code == 200
    revoked = api.post("/v1/revocations", json={"serial": unit.serial, "reason": "keyCompromise"})
    assert revoked.status_code == 201, revoked.text
    ocsp_der(api, unit.chain)
    forged = api.post("/v1/device-auth", json={"token": "AAAA", "chain": unit.chain})
    assert forged.status_code >= 400
    after = scrape(api)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("birthright_enrollments_total", outcome="issued") == 1
    assert moved("birthright_attestations_total", verdict="pass", reason="ok") == 1
    status = str(unknown_order.status_code)
    assert moved("birthright_refusals_total", code=refused_code, status=status) == 1
    assert moved("birthright_revocations_total", kind="single") == 1
    assert moved("birthright_device_auth_total", result=forged.json()["code"]) == 1
    assert moved("birthright_ocsp_answers_total", status="revoked") == 1
    # Latency by route template: the serial never becomes a label.
    route = {"route": "/v1/devices/{serial}/status", "method": "GET", "status_class": "2xx"}
    assert moved("birthright_http_request_duration_seconds_count", **route) == 1
    assert (
        moved(
            "birthright_http_request_duration_seconds_count",
            route="/ocsp",
            method="POST",
            status_class="2xx",
        )
        == 1
    )
    assert not [k for k in after if unit.serial in str(k)]
    # Quota gauges are read from the database at scrape time.
    labels = {"work_order": WO, "product": "BR-TEST"}
    assert value(after, "birthright_work_order_quota_used", **labels) == 1
    assert value(after, "birthright_work_order_quota_remaining", **labels) == 99


def test_metrics_are_for_allowed_scrapers_only(served: ServedBackend) -> None:
    locked = dataclasses.replace(
        served.backend,
        observability=dataclasses.replace(
            served.backend.observability, metrics_allow=(ip_network("10.0.0.0/8"),)
        ),
    )
    server = ThreadServer(locked, port := free_port())
    server.start()
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    finally:
        server.stop()
    assert r.status_code == 403
    assert r.json()["code"] == "metrics_forbidden"
    assert "birthright_" not in r.text


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        pytest.param("lb-7f3a.42:9", True, id="valid-kept"),
        pytest.param("x" * 129, False, id="too-long-replaced"),
        pytest.param("a b<script>", False, id="bad-characters-replaced"),
    ],
)
def test_request_id_is_returned_on_every_answer(api: httpx.Client, sent: str, kept: bool) -> None:
    answers = [
        api.get("/healthz", headers={"X-Request-ID": sent}),
        api.get("/v1/devices/NOPE/status", headers={"X-Request-ID": sent}),  # 404
        api.post("/v1/serials", content=b"{", headers={"X-Request-ID": sent}),  # 422
        api.post("/v1/serials", content=b"x" * 70_000, headers={"X-Request-ID": sent}),  # 413
    ]
    assert [a.status_code for a in answers] == [200, 404, 422, 413]
    for answer in answers:
        got = answer.headers["x-request-id"]
        if kept:
            assert got == sent
        else:
            assert got != sent
            assert len(got) == 32
    if not kept:
        assert len({a.headers["x-request-id"] for a in answers}) == 4, "one fresh id per request"


def test_access_logs_are_json_lines_with_request_ids_and_no_secrets(
    api: httpx.Client, settings: Settings, tmp_path: Path
) -> None:
    log_file = tmp_path / "logs" / "service.log"
    root = logging.getLogger()
    saved = (root.level, root.handlers[:])
    configure_logging("INFO", file=log_file, fmt="json")
    try:
        unit = make_unit(api, "CHIP-LOG")
        r = api.get(f"/v1/devices/{unit.serial}/status", headers={"X-Request-ID": "req-123"})
        assert r.status_code == 200
        refused = api.get("/v1/devices/BRT99999/status", headers={"X-Request-ID": "req-404"})
        assert refused.status_code == 404
        deadline = time.monotonic() + 10  # the access line is written once the answer is out
        while '"req-404"' not in log_file.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert all({"ts", "level", "logger", "message"} <= line.keys() for line in lines)
    access = {line["request_id"]: line for line in lines if line["logger"] == "birthright.access"}
    ok = access["req-123"]
    assert ok["route"] == "/v1/devices/{serial}/status"
    assert ok["status"] == 200
    assert ok["method"] == "GET"
    assert isinstance(ok["duration_ms"], float)
    assert access["req-404"]["code"] == "device_unknown"
    service_lines = [line for line in lines if line["logger"].startswith("birthright.")]
    access_lines = [line for line in service_lines if line["logger"] == "birthright.access"]
    assert not [line for line in access_lines if unit.serial in json.dumps(line)], "no raw paths"
    # A line logged deep inside the enrollment carries the id of the request it served.
    enrolled = next(line for line in service_lines if line["message"].startswith("enrolled "))
    enrollment = next(line for line in access_lines if line["route"] == "/v1/enrollments")
    assert enrolled["request_id"] == enrollment["request_id"]
    secrets = [p.read_text().strip() for p in settings.ws.secrets_dir.iterdir()]
    assert scan_tree(log_file.parent, secrets) == {}


def test_healthz_and_readyz_when_ready(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    r = api.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready"
    assert [c["name"] for c in r.json()["checks"]] == ["database", "schema", "ca_key"]


def test_readyz_names_a_schema_behind_head(served: ServedBackend, database_url: str) -> None:
    command.stamp(alembic_config(database_url), "0012")
    with httpx.Client(base_url=served.url, timeout=30) as api:
        r = api.get("/readyz")
        assert api.get("/healthz").status_code == 200, "alive, just not ready"
    assert r.status_code == 503
    assert r.json()["code"] == "schema_not_at_head"
    assert "birthright db upgrade" in r.json()["message"]
    assert r.headers["Retry-After"] == "5"


def test_readyz_with_the_database_unreachable(settings: Settings, factory_ca: FactoryCa) -> None:
    away = settings.model_copy(
        update={"database_url": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none"}
    )
    backend = build_backend(away, ca=factory_ca)
    assert isinstance(backend.observability, Observability)
    server = ThreadServer(backend, port := free_port())
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
            alive = api.get("/healthz")
            ready = api.get("/readyz")
    finally:
        server.stop()
        backend.close()
    assert alive.status_code == 200
    assert ready.status_code == 503
    body = ready.json()
    assert body["code"] == "database_unavailable"
    failed = {c["name"] for c in body["checks"] if not c["ok"]}
    assert {"database", "schema"} <= failed
    assert {c["name"] for c in body["checks"] if c["ok"]} == {"ca_key"}
