"""Attestation that proves the unit *and* its firmware, over real HTTP and a real database.

Releases are signed and published with the real ``birthright firmware`` commands against the
same database the served backend uses; units are enrolled with software keys and present EAT
evidence in a COSE_Sign1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import cbor2
import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from birthright.attest.eat import EatClaims, build_eat
from birthright.attest.keys import RESULT_KEY, load_public_key
from birthright.attest.result_signing import verify_result
from birthright.cli.main import app as main_app
from birthright.db.attestation import SqlAttestationRecords
from birthright.db.engine import make_sessionmaker
from birthright.db.models import AuditEventRow, FirmwareReleaseRow
from birthright.device.agent import RunningFirmware
from birthright.device.agent import attest as agent_attest
from birthright.errors import InputError
from birthright.se.sim import DeviceSet, create_devices
from birthright.settings import Settings
from birthright.station.client import BackendClient
from birthright.station.provision import Station
from tests.conftest import ServedBackend, seed_line
from tests.integration.test_attestation_api import (
    Unit,
    challenge,
    evidence_body,
    failed_ids,
    make_unit,
)
from tests.integration.test_enrollment_api import STATION, WO

PRODUCT = "BR-TEST"  # the product seed_line's work order mints


@pytest.fixture
def api(served: ServedBackend) -> Iterator[httpx.Client]:
    seed_line(served, station_id=STATION, work_order_id=WO)
    with httpx.Client(base_url=served.url, headers=served.auth, timeout=10) as client:
        yield client


def cli(settings: Settings, *args: str | Path) -> Result:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("BIRTHRIGHT_")}
    env |= {"BIRTHRIGHT_DATABASE_URL": settings.effective_database_url, "COLUMNS": "200"}
    argv = [str(a) for a in args] + ["-w", str(settings.ws.root)]
    return CliRunner().invoke(main_app, argv, env=env)


def release(
    settings: Settings, tmp_path: Path, version: str, content: bytes, security_version: int = 1
) -> Path:
    """Sign and publish ``content`` as ``version``; returns the image path."""
    image = tmp_path / f"fw-{version}.bin"
    image.write_bytes(content)
    signed = cli(
        settings, "firmware", "sign", image, "--product", PRODUCT, "--version", version,
        "--security-version", str(security_version),
    )  # fmt: skip
    assert signed.exit_code == 0, signed.output
    published = cli(settings, "firmware", "publish", f"{image}.manifest.json")
    assert published.exit_code == 0, published.output
    return image


def eat_body(
    unit: Unit, nonce: str, version: str, image: bytes, serial: str | None = None
) -> dict[str, object]:
    claims = EatClaims(
        nonce=nonce,
        serial=serial or unit.serial,
        firmware_version=version,
        firmware_sha256=hashlib.sha256(image).digest(),
        issued_at=datetime.now(UTC),
    )
    token = build_eat(claims, lambda d: unit.key.sign(d, ec.ECDSA(hashes.SHA256())))
    return {"evidence": base64.b64encode(token).decode(), "chain": unit.chain}


def attest(api: httpx.Client, unit: Unit, version: str, image: bytes) -> dict[str, object]:
    r = api.post(
        "/v1/attestations", json=eat_body(unit, challenge(api, unit.serial), version, image)
    )
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def test_allowed_firmware_passes_with_a_result_signed_by_the_backend(
    api: httpx.Client, settings: Settings, tmp_path: Path
) -> None:
    image = release(settings, tmp_path, "1.0.0", b"firmware one").read_bytes()
    unit = make_unit(api, "CHIP-A")
    nonce = challenge(api, unit.serial)
    r = api.post("/v1/attestations", json=eat_body(unit, nonce, "1.0.0", image))
    body = r.json()
    assert (body["verdict"], body["status"]) == ("pass", "affirming"), body
    assert {c["id"] for c in body["checks"]} == {
        "nonce.valid",
        "chain.valid",
        "signature.valid",
        "device.enrolled",
        "status.active",
        "firmware.allowed",
    }
    claims = verify_result(
        base64.b64decode(body["result_token"]), load_public_key(settings.ws, RESULT_KEY)
    )
    assert (claims["serial"], claims["eat_nonce"], claims["ear.status"]) == (
        unit.serial,
        nonce,
        "affirming",
    )


def test_a_blocked_version_fails(api: httpx.Client, settings: Settings, tmp_path: Path) -> None:
    image = release(settings, tmp_path, "1.0.0", b"firmware one").read_bytes()
    blocked = cli(settings, "firmware", "block", PRODUCT, "1.0.0", "--reason", "CVE-2026-1")
    assert blocked.exit_code == 0, blocked.output
    body = attest(api, make_unit(api, "CHIP-A"), "1.0.0", image)
    assert (failed_ids(body), body["status"]) == ({"firmware.blocked"}, "contraindicated")


def test_a_unit_cannot_roll_back_below_a_security_version_it_already_ran(
    api: httpx.Client, settings: Settings, tmp_path: Path
) -> None:
    old = release(settings, tmp_path, "1.0.0", b"one", security_version=1).read_bytes()
    new = release(settings, tmp_path, "2.0.0", b"two", security_version=2).read_bytes()
    unit = make_unit(api, "CHIP-A")
    assert attest(api, unit, "1.0.0", old)["status"] == "affirming"
    assert attest(api, unit, "2.0.0", new)["status"] == "affirming"  # the floor is now 2
    body = attest(api, unit, "1.0.0", old)  # published, not blocked, but older
    assert (failed_ids(body), body["status"]) == ({"firmware.rollback"}, "contraindicated")
    assert attest(api, unit, "2.0.0", new)["status"] == "affirming"  # the refusal kept it at 2
    assert failed_ids(attest(api, unit, "1.0.0", old)) == {"firmware.rollback"}
    # A unit that never ran 2.0.0 may still run 1.0.0: the floor is per unit.
    assert attest(api, make_unit(api, "CHIP-B"), "1.0.0", old)["status"] == "affirming"


def test_an_unknown_version_fails(api: httpx.Client, settings: Settings, tmp_path: Path) -> None:
    image = release(settings, tmp_path, "1.0.0", b"firmware one").read_bytes()
    body = attest(api, make_unit(api, "CHIP-A"), "1.0.1", image)
    assert failed_ids(body) == {"firmware.unknown"}


def test_a_measurement_mismatch_fails(
    api: httpx.Client, settings: Settings, tmp_path: Path
) -> None:
    release(settings, tmp_path, "1.0.0", b"firmware one")
    body = attest(api, make_unit(api, "CHIP-A"), "1.0.0", b"firmware one, patched")
    assert failed_ids(body) == {"firmware.measurement_mismatch"}


def test_identity_only_evidence_fails_once_the_product_has_an_allow_list(
    api: httpx.Client, settings: Settings, tmp_path: Path
) -> None:
    unit = make_unit(api, "CHIP-A")
    legacy = api.post("/v1/attestations", json=evidence_body(unit, challenge(api, unit.serial)))
    assert (legacy.json()["verdict"], legacy.json()["status"]) == ("pass", "warning")
    release(settings, tmp_path, "1.0.0", b"firmware one")
    legacy = api.post("/v1/attestations", json=evidence_body(unit, challenge(api, unit.serial)))
    assert failed_ids(legacy.json()) == {"firmware.unreported"}


def test_a_forged_or_tampered_manifest_is_refused_at_publish(
    api: httpx.Client, served: ServedBackend, settings: Settings, tmp_path: Path
) -> None:
    image = release(settings, tmp_path, "1.0.0", b"firmware one")
    manifest = Path(f"{image}.manifest.json")
    outer = json.loads(manifest.read_bytes())
    inner = json.loads(base64.b64decode(outer["manifest"]))
    inner |= {"version": "2.0.0", "image_sha256": hashlib.sha256(b"evil").hexdigest()}
    outer["manifest"] = base64.b64encode(
        json.dumps(inner, sort_keys=True, separators=(",", ":")).encode()
    ).decode()
    tampered = tmp_path / "tampered.manifest.json"
    tampered.write_text(json.dumps(outer))
    result = cli(settings, "firmware", "publish", tampered)
    assert isinstance(result.exception, InputError)
    assert result.exception.code == "manifest_signature_invalid"
    with served.backend.engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(FirmwareReleaseRow)).scalar_one()
    assert count == 1


def test_first_contact_is_recorded_once(
    api: httpx.Client, served: ServedBackend, settings: Settings, tmp_path: Path
) -> None:
    image = release(settings, tmp_path, "1.0.0", b"firmware one").read_bytes()
    unit = make_unit(api, "CHIP-A")
    records = SqlAttestationRecords(make_sessionmaker(served.backend.engine))
    assert attest(api, unit, "1.0.1", image)["verdict"] == "fail"
    assert records.contact(unit.serial) is None  # a failed attestation is no first contact
    assert attest(api, unit, "1.0.0", image)["verdict"] == "pass"
    first = records.contact(unit.serial)
    assert first is not None
    assert attest(api, unit, "1.0.0", image)["verdict"] == "pass"
    again = records.contact(unit.serial)
    assert again is not None
    assert again[0] == first[0]
    assert again[1] >= first[1]
    with served.backend.engine.connect() as conn:
        events = conn.execute(
            select(func.count())
            .select_from(AuditEventRow)
            .where(
                AuditEventRow.event == "device.first_contact", AuditEventRow.serial == unit.serial
            )
        ).scalar_one()
    assert events == 1


def test_eat_evidence_that_is_malformed_is_a_clear_400(api: httpx.Client) -> None:
    unit = make_unit(api, "CHIP-A")
    body = eat_body(unit, challenge(api, unit.serial), "1.0.0", b"x")
    token = base64.b64decode(str(body["evidence"]))
    _prot, unprot, payload, sig = cbor2.loads(token).value
    es384 = cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps({1: -35}), dict(unprot), payload, sig]))
    for evidence, code in [
        (token[:-3], "evidence_malformed"),
        (es384, "evidence_alg_unsupported"),
        (b"\xd2" + b"\x00" * 8200, "evidence_too_large"),
    ]:
        r = api.post(
            "/v1/attestations",
            json={"evidence": base64.b64encode(evidence).decode(), "chain": unit.chain},
        )
        assert (r.status_code, r.json()["code"]) == (
            413 if code == "evidence_too_large" else 400,
            code,
        ), r.text


def test_a_softhsm2_chip_attests_its_firmware_through_the_device_agent(
    served: ServedBackend, settings: Settings, sim_device_set: DeviceSet, tmp_path: Path
) -> None:
    """The real agent: EAT signed on chip (DER from the token, raw r‖s in the COSE_Sign1)."""
    seed_line(served, station_id="st-fw", work_order_id="WO-FW")
    image = release(settings, tmp_path, "2.1.0", b"firmware two")
    [made] = create_devices(sim_device_set.directory, 1, pin=sim_device_set.pin)
    with BackendClient(served.url) as backend, sim_device_set.open(made.label) as se:
        station = Station(station_id="st-fw", work_order_id="WO-FW", backend=backend)
        assert station.provision(se, label=made.label).ok
        good = RunningFirmware.from_image(image, "2.1.0")
        verdict = agent_attest(se, backend, now=datetime.now(UTC), firmware=good)
        assert (verdict["verdict"], verdict["status"]) == ("pass", "affirming"), verdict
        rolled_back = RunningFirmware(version="2.1.0", sha256=hashlib.sha256(b"old").digest())
        verdict = agent_attest(se, backend, now=datetime.now(UTC), firmware=rolled_back)
        assert failed_ids(verdict) == {"firmware.measurement_mismatch"}
