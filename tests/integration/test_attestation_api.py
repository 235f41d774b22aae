"""Attestation over real HTTP: nonce lifecycle, signature, chain, enrollment status."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from sqlalchemy import update

from birthright.attest.evidence import build_evidence
from birthright.db.models import NonceRow
from tests.conftest import ServedBackend, seed_line
from tests.integration.test_enrollment_api import STATION, WO, csr_b64


@dataclass
class Unit:
    serial: str
    key: ec.EllipticCurvePrivateKey
    chain: list[str]


@pytest.fixture
def api(served: ServedBackend) -> Iterator[httpx.Client]:
    seed_line(served, station_id=STATION, work_order_id=WO)
    with httpx.Client(base_url=served.url, headers=served.auth, timeout=10) as client:
        yield client


def make_unit(api: httpx.Client, chip: str) -> Unit:
    key = ec.generate_private_key(ec.SECP256R1())
    serial = api.post(
        "/v1/serials", json={"station_id": STATION, "work_order_id": WO, "chip_id": chip}
    ).json()["serial"]
    body = api.post(
        "/v1/enrollments",
        json={
            "station_id": STATION,
            "work_order_id": WO,
            "serial": serial,
            "chip_id": chip,
            "csr": csr_b64(key),
        },
    ).json()
    return Unit(serial, key, [body["certificate"], *body["chain"]])


def evidence_body(
    unit: Unit,
    nonce: str,
    *,
    serial: str | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
    chain: list[str] | None = None,
) -> dict[str, object]:
    evidence = build_evidence(nonce=nonce, serial=serial or unit.serial, now=datetime.now(UTC))
    signature = (key or unit.key).sign(evidence, ec.ECDSA(hashes.SHA256()))
    return {
        "evidence": base64.b64encode(evidence).decode(),
        "signature": base64.b64encode(signature).decode(),
        "chain": chain or unit.chain,
    }


def challenge(api: httpx.Client, serial: str) -> str:
    r = api.post("/v1/attestations/challenges", json={"serial": serial})
    assert r.status_code == 201, r.text
    return str(r.json()["nonce"])


def failed_ids(result: dict[str, Any]) -> set[str]:
    return {c["id"] for c in result["checks"] if c["status"] != "pass"}


def test_a_fresh_signed_challenge_passes_every_check(api: httpx.Client) -> None:
    unit = make_unit(api, "CHIP-A")
    result = api.post("/v1/attestations", json=evidence_body(unit, challenge(api, unit.serial)))
    assert result.status_code == 200
    body = result.json()
    assert body["verdict"] == "pass"
    assert {c["id"] for c in body["checks"]} == {
        "nonce.valid",
        "chain.valid",
        "signature.valid",
        "device.enrolled",
        "status.active",
    }


def test_a_reused_nonce_is_refused(api: httpx.Client) -> None:
    unit = make_unit(api, "CHIP-A")
    body = evidence_body(unit, challenge(api, unit.serial))
    assert api.post("/v1/attestations", json=body).json()["verdict"] == "pass"
    again = api.post("/v1/attestations", json=body).json()
    assert again["verdict"] == "fail"
    assert failed_ids(again) == {"nonce.replayed"}


def test_an_expired_nonce_is_refused(api: httpx.Client, served: ServedBackend) -> None:
    unit = make_unit(api, "CHIP-A")
    nonce = challenge(api, unit.serial)
    with served.backend.engine.begin() as conn:
        conn.execute(
            update(NonceRow)
            .where(NonceRow.nonce == nonce)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    result = api.post("/v1/attestations", json=evidence_body(unit, nonce)).json()
    assert failed_ids(result) == {"nonce.expired"}


def test_an_unknown_nonce_and_another_devices_nonce_are_refused(api: httpx.Client) -> None:
    a, b = make_unit(api, "CHIP-A"), make_unit(api, "CHIP-B")
    result = api.post("/v1/attestations", json=evidence_body(a, "never-issued")).json()
    assert failed_ids(result) == {"nonce.unknown"}
    result = api.post("/v1/attestations", json=evidence_body(a, challenge(api, b.serial))).json()
    assert failed_ids(result) == {"nonce.wrong_device"}


def test_a_signature_by_another_key_fails(api: httpx.Client) -> None:
    unit = make_unit(api, "CHIP-A")
    intruder = ec.generate_private_key(ec.SECP256R1())
    body = evidence_body(unit, challenge(api, unit.serial), key=intruder)
    assert failed_ids(api.post("/v1/attestations", json=body).json()) == {"signature.invalid"}


def test_another_devices_chain_fails(api: httpx.Client) -> None:
    a, b = make_unit(api, "CHIP-A"), make_unit(api, "CHIP-B")
    body = evidence_body(a, challenge(api, a.serial), chain=b.chain)
    ids = failed_ids(api.post("/v1/attestations", json=body).json())
    assert ids == {"signature.invalid", "device.cert_mismatch"}


def test_a_self_made_chain_is_untrusted(api: httpx.Client) -> None:
    unit = make_unit(api, "CHIP-A")
    name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, unit.serial)])
    now = datetime.now(UTC)
    forged = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(unit.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(unit.key, hashes.SHA256())
    )
    body = evidence_body(
        unit, challenge(api, unit.serial), chain=[forged.public_bytes(Encoding.PEM).decode()]
    )
    ids = failed_ids(api.post("/v1/attestations", json=body).json())
    assert ids == {"chain.untrusted", "device.cert_mismatch"}


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (
            lambda b: b.update(evidence=base64.b64encode(b"{not json").decode()),
            "evidence_malformed",
        ),
        (
            lambda b: b.update(
                chain=["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"]
            ),
            "chain_malformed",
        ),
        (lambda b: b.update(signature="***"), "bad_encoding"),
    ],
    ids=["evidence-not-json", "chain-garbage", "signature-not-base64"],
)
def test_malformed_evidence_is_a_clear_400(api: httpx.Client, mutate: object, code: str) -> None:
    unit = make_unit(api, "CHIP-A")
    body = evidence_body(unit, challenge(api, unit.serial))
    mutate(body)  # type: ignore[operator]
    r = api.post("/v1/attestations", json=body)
    assert (r.status_code, r.json()["code"]) == (400, code)


def test_challenge_for_an_unknown_device_is_404(api: httpx.Client) -> None:
    r = api.post("/v1/attestations/challenges", json={"serial": "NOPE"})
    assert (r.status_code, r.json()["code"]) == (404, "device_unknown")
