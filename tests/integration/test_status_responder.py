"""`birthright serve-status`: OCSP and the CRL over plain HTTP from worker processes of their
own, on the service's database, answering what the service has just recorded."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from birthright.ca.authority import FactoryCa
from birthright.settings import Settings, write_settings_file
from tests.conftest import ServedBackend, free_port, seed_line
from tests.integration.test_enrollment_api import STATION, WO
from tests.integration.test_revocation_api import make_unit


@pytest.fixture
def api(served: ServedBackend) -> Iterator[httpx.Client]:
    seed_line(served, station_id=STATION, work_order_id=WO)
    with httpx.Client(base_url=served.url, headers=served.auth, timeout=30) as client:
        yield client


@pytest.fixture
def responder(settings: Settings, factory_ca: FactoryCa) -> Iterator[str]:
    """Two worker processes, as a replica would run them."""
    write_settings_file(settings, ("database_url",))
    port = free_port()
    log = (settings.ws.root / "status-test.log").open("wb")
    command = [sys.executable, "-m", "birthright.cli.main", "serve-status"]
    proc = subprocess.Popen(
        [*command, "-w", str(settings.ws.root), "--port", str(port), "--workers", "2"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (settings.ws.root / "status-test.log").read_text()
            assert time.monotonic() < deadline, "serve-status did not start"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def status_of(url: str, cert: x509.Certificate, issuer: x509.Certificate) -> ocsp.OCSPResponse:
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
    r = httpx.post(
        f"{url}/ocsp",
        content=request.public_bytes(Encoding.DER),
        headers={"content-type": "application/ocsp-request"},
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/ocsp-response"
    return ocsp.load_der_ocsp_response(r.content)


def test_a_revocation_through_the_service_is_answered_by_every_worker_at_once(
    api: httpx.Client, responder: str, factory_ca: FactoryCa
) -> None:
    unit = make_unit(api, "CHIP-STATUS")
    cert = x509.load_pem_x509_certificate(unit.chain[0].encode())
    issuer = factory_ca.issuing_cert
    before = status_of(responder, cert, issuer)
    assert before.certificate_status is ocsp.OCSPCertStatus.GOOD
    revoked = api.post("/v1/revocations", json={"serial": unit.serial, "reason": "keyCompromise"})
    assert revoked.status_code == 201, revoked.text
    # Each new connection may land on either worker: every one of them must say revoked.
    for _ in range(8):
        after = status_of(responder, cert, issuer)
        assert after.certificate_status is ocsp.OCSPCertStatus.REVOKED
        assert after.revocation_reason is x509.ReasonFlags.key_compromise
    key = issuer.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(after.signature, after.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))


def test_the_crl_is_served_with_its_etag_and_garbage_gets_an_ocsp_error(
    api: httpx.Client, responder: str, factory_ca: FactoryCa
) -> None:
    unit = make_unit(api, "CHIP-CRL")
    revoked = api.post("/v1/revocations", json={"serial": unit.serial, "reason": "superseded"})
    assert revoked.status_code == 201, revoked.text
    r = httpx.get(f"{responder}/crl/issuing.crl")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(r.content)
    issuer_key = factory_ca.issuing_cert.public_key()
    assert isinstance(issuer_key, ec.EllipticCurvePublicKey)
    assert crl.is_signature_valid(issuer_key)
    cert = x509.load_pem_x509_certificate(unit.chain[0].encode())
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    again = httpx.get(f"{responder}/crl/issuing.crl", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304

    garbage = httpx.post(f"{responder}/ocsp", content=b"not an ocsp request")
    assert ocsp.load_der_ocsp_response(garbage.content).response_status is (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )


def test_anything_else_is_a_json_error_with_a_stable_code(responder: str) -> None:
    missing = httpx.post(f"{responder}/v1/enrollments", json={})
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    wrong = httpx.delete(f"{responder}/crl/issuing.crl")
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "method_not_allowed"
