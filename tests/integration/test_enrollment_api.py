"""Enrollment over real HTTP on 127.0.0.1 against SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from sqlalchemy import text

from birthright.enrollment.service import SECURITY_EVENTS
from tests.conftest import ServedBackend, seed_line

STATION = "st-1"
WO = "WO-TEST"
TABLES = ("devices", "serial_reservations", "work_orders", "stations", "audit_events", "alerts")


def csr_b64(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, serial: str = "x") -> str:
    name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, serial)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return base64.b64encode(csr.public_bytes(Encoding.DER)).decode()


def counts(served: ServedBackend) -> dict[str, int]:
    with served.backend.engine.connect() as conn:
        found = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}  # noqa: S608
        found["minted"] = conn.execute(text("SELECT sum(minted) FROM work_orders")).scalar_one()
        return found


@pytest.fixture
def api(served: ServedBackend) -> Iterator[httpx.Client]:
    seed_line(served, station_id=STATION, work_order_id=WO)
    with httpx.Client(base_url=served.url, headers=served.auth, timeout=10) as client:
        yield client


def reserve(api: httpx.Client, chip: str) -> str:
    r = api.post("/v1/serials", json={"station_id": STATION, "work_order_id": WO, "chip_id": chip})
    assert r.status_code == 200, r.text
    return str(r.json()["serial"])


def enroll(
    api: httpx.Client, chip: str, key: ec.EllipticCurvePrivateKey, serial: str | None = None
) -> httpx.Response:
    serial = serial or reserve(api, chip)
    return api.post(
        "/v1/enrollments",
        json={
            "station_id": STATION,
            "work_order_id": WO,
            "serial": serial,
            "chip_id": chip,
            "csr": csr_b64(key),
        },
    )


def test_enrollment_issues_a_certificate_and_a_retry_returns_it_again(api: httpx.Client) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    serial = reserve(api, "CHIP-A")
    first = enroll(api, "CHIP-A", key, serial)
    assert first.status_code == 201, first.text
    body = first.json()
    cert = x509.load_pem_x509_certificate(body["certificate"].encode())
    assert cert.public_key() == key.public_key()
    assert len(body["chain"]) == 2
    again = enroll(api, "CHIP-A", key, serial)
    assert again.status_code == 200
    assert again.json()["certificate"] == body["certificate"]
    assert not again.json()["created"]
    device = api.get(f"/v1/devices/{serial}").json()
    assert device["chip_id"] == "CHIP-A"
    assert device["status"] == "active"


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("not_der", 400, "csr_malformed"),
        ("bad_signature", 400, "csr_signature_invalid"),
        ("wrong_curve", 400, "key_unsupported"),
        ("rsa_key", 400, "key_unsupported"),
        ("oversized", 413, "body_too_large"),
        ("unknown_station", 403, "station_unknown"),
        ("duplicate_serial", 409, "serial_enrolled"),
        ("chip_of_another_serial", 409, "serial_chip_mismatch"),
        ("duplicate_key", 409, "key_shared"),
        ("missing_field", 422, "validation_error"),
        ("bad_base64", 400, "bad_encoding"),
        ("se_proof_malformed", 400, "se_proof_malformed"),
        ("se_proof_kind_invalid", 422, "validation_error"),
    ],
)
def test_bad_input_gets_a_json_error_and_changes_nothing_but_the_audit_log(
    api: httpx.Client, served: ServedBackend, case: str, status: int, code: str
) -> None:
    enrolled_key = ec.generate_private_key(ec.SECP256R1())
    enrolled_serial = reserve(api, "CHIP-A")
    assert enroll(api, "CHIP-A", enrolled_key, enrolled_serial).status_code == 201
    fresh_serial = reserve(api, "CHIP-B")
    key = ec.generate_private_key(ec.SECP256R1())
    body: dict[str, Any] = {
        "station_id": STATION,
        "work_order_id": WO,
        "serial": fresh_serial,
        "chip_id": "CHIP-B",
        "csr": csr_b64(key),
    }
    if case == "not_der":
        body["csr"] = base64.b64encode(b"\x30\x82\x01\x00garbage").decode()
    elif case == "bad_signature":
        der = bytearray(base64.b64decode(body["csr"]))
        der[-5] ^= 0x01
        body["csr"] = base64.b64encode(bytes(der)).decode()
    elif case == "wrong_curve":
        body["csr"] = csr_b64(ec.generate_private_key(ec.SECP384R1()))
    elif case == "rsa_key":
        body["csr"] = csr_b64(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    elif case == "oversized":
        body["csr"] = "A" * 200_000
    elif case == "unknown_station":
        body["station_id"] = "ghost-station"
    elif case == "duplicate_serial":
        body["serial"] = enrolled_serial
    elif case == "chip_of_another_serial":
        body["chip_id"] = "CHIP-A"
    elif case == "duplicate_key":
        body["csr"] = csr_b64(enrolled_key)
    elif case == "missing_field":
        del body["csr"]
    elif case == "bad_base64":
        body["csr"] = "!!!not base64!!!"
    elif case == "se_proof_malformed":
        body["se_proof"] = {"kind": "pkcs11-vendor", "statement": "!!", "signature": 1}
    elif case == "se_proof_kind_invalid":
        body["se_proof"] = {"kind": "No Such Kind!"}
    before = counts(served)
    r = api.post("/v1/enrollments", json=body)
    assert r.status_code == status, r.text
    assert r.json()["code"] == code
    assert r.json()["message"]
    after = counts(served)
    audited = 1 if status in (400, 403, 409) and case != "bad_base64" else 0
    alerted = 1 if code in SECURITY_EVENTS else 0
    assert after == {
        **before,
        "audit_events": before["audit_events"] + audited + alerted,
        "alerts": before["alerts"] + alerted,
    }


def test_unknown_routes_and_methods_answer_json(api: httpx.Client) -> None:
    r = api.get("/v1/nothing-here")
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    r = api.get("/v1/enrollments")
    assert (r.status_code, r.json()["code"]) == (405, "method_not_allowed")


def test_a_fault_no_handler_knows_is_a_json_500_that_tells_nothing_internal(
    served: ServedBackend, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fails(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("internal detail /var/secret")

    monkeypatch.setattr(served.backend.enrollment, "reserve_serial", fails)
    r = api.post("/v1/serials", json={"station_id": STATION, "work_order_id": WO, "chip_id": "c"})
    assert r.status_code == 500
    assert r.json() == {
        "code": "internal_error",
        "message": "the server failed; nothing was changed",
    }
    assert "secret" not in r.text
    assert r.headers["x-request-id"]  # the outer middlewares still saw the answer
    assert api.get("/healthz").status_code == 200  # and the service goes on


def test_openapi_is_served(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    assert "/v1/enrollments" in spec["paths"]
    assert "/v1/attestations" in spec["paths"]
