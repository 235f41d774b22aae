"""A firmware bug forces a recall: revoke exactly the units that proved they run the bad
version, across work orders, while the others keep attesting (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from birthright.db.operations import WorkOrders
from birthright.enrollment.model import WorkOrderSpec
from birthright.settings import Settings
from tests.conftest import ServedBackend, seed_line
from tests.integration.test_attestation_api import Unit
from tests.integration.test_attestation_firmware import attest, release
from tests.integration.test_enrollment_api import STATION, WO, csr_b64

OTHER_WO = "WO-OTHER"


@pytest.fixture
def api(served: ServedBackend) -> Iterator[httpx.Client]:
    seed_line(served, station_id=STATION, work_order_id=WO)
    now = datetime.now(UTC)
    WorkOrders(served.backend.sessions).open(
        WorkOrderSpec(
            OTHER_WO,
            "BR-TEST",
            "site1",
            "line1",
            10,
            "BRU",
            1,
            20,
            now - timedelta(minutes=1),
            now + timedelta(days=1),
        ),
        now=now,
    )
    with httpx.Client(base_url=served.url, headers=served.auth, timeout=10) as client:
        yield client


def unit_in(api: httpx.Client, chip: str, work_order: str) -> Unit:
    key = ec.generate_private_key(ec.SECP256R1())
    serial = api.post(
        "/v1/serials", json={"station_id": STATION, "work_order_id": work_order, "chip_id": chip}
    ).json()["serial"]
    body = api.post(
        "/v1/enrollments",
        json={
            "station_id": STATION,
            "work_order_id": work_order,
            "serial": serial,
            "chip_id": chip,
            "csr": csr_b64(key),
        },
    ).json()
    return Unit(serial, key, [body["certificate"], *body["chain"]])


def test_a_recall_by_firmware_version_revokes_exactly_the_units_running_it(
    api: httpx.Client, settings: Settings, tmp_path: Path
) -> None:
    images = {v: f"firmware {v}\n".encode() * 32 for v in ("1.0", "1.1")}
    for version, image in images.items():
        release(settings, tmp_path, version, image)
    runs = {
        "a1": (unit_in(api, "A1", WO), "1.0"),
        "a2": (unit_in(api, "A2", WO), "1.1"),
        "b1": (unit_in(api, "B1", OTHER_WO), "1.0"),
        "b2": (unit_in(api, "B2", OTHER_WO), "1.1"),
    }
    never_attested = unit_in(api, "B3", OTHER_WO)
    for unit, version in runs.values():
        assert attest(api, unit, version, images[version])["verdict"] == "pass"

    preview = api.post(
        "/v1/recalls/preview",
        json={"selection": {"firmware_versions": ["1.0"]}, "reason": "keyCompromise"},
    )
    assert preview.status_code == 201, preview.text
    assert preview.json()["count"] == 2
    assert sorted(preview.json()["sample"]) == sorted([runs["a1"][0].serial, runs["b1"][0].serial])
    executed = api.post(f"/v1/recalls/{preview.json()['token']}/execute")
    assert executed.status_code == 200, executed.text
    assert executed.json()["revoked"] == 2

    for name, (unit, version) in runs.items():
        result = attest(api, unit, version, images[version])
        expected = "fail" if version == "1.0" else "pass"
        assert result["verdict"] == expected, name
        if expected == "fail":
            failed = {c["id"] for c in result["checks"] if c["status"] != "pass"}  # type: ignore[attr-defined]
            assert failed == {"status.revoked"}
    status = api.get(f"/v1/devices/{never_attested.serial}/status").json()
    assert status["status"] == "active"
    counts = api.get("/v1/devices/status-counts").json()
    assert {
        (c["firmware_version"], c["status"], c["units"]) for c in counts["by_firmware_version"]
    } == {
        ("1.0", "revoked", 2),
        ("1.1", "active", 2),
        ("unknown", "active", 1),
    }
    assert {(c["work_order_id"], c["status"], c["units"]) for c in counts["by_work_order"]} == {
        (WO, "revoked", 1),
        (WO, "active", 1),
        (OTHER_WO, "revoked", 1),
        (OTHER_WO, "active", 2),
    }


def test_a_firmware_version_nobody_reported_matches_nothing(api: httpx.Client) -> None:
    r = api.post(
        "/v1/recalls/preview",
        json={"selection": {"firmware_versions": ["9.9"]}, "reason": "keyCompromise"},
    )
    assert (r.status_code, r.json()["code"]) == (400, "recall_empty")
