"""Revocation and targeted recall over real HTTP on 127.0.0.1, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text

from birthright.db.engine import make_sessionmaker
from birthright.db.operations import WorkOrders
from birthright.enrollment.model import WorkOrderSpec
from tests.conftest import ServedBackend, seed_line
from tests.integration.test_attestation_api import Unit, challenge, evidence_body, failed_ids
from tests.integration.test_enrollment_api import STATION, WO, csr_b64

WO2 = "WO-OTHER"
TABLES = ("devices", "revocations", "recalls", "audit_events")


@pytest.fixture
def api(served: ServedBackend) -> Iterator[httpx.Client]:
    seed_line(served, station_id=STATION, work_order_id=WO)
    with httpx.Client(base_url=served.url, headers=served.auth, timeout=30) as client:
        yield client


def seed_other_line(served: ServedBackend) -> None:
    """A second station and work order with their own serial prefix (``BRX``)."""
    now = datetime.now(UTC)
    served.backend.operations.register_station("st-2", site="site2", line="line9", now=now)
    WorkOrders(make_sessionmaker(served.backend.engine)).open(
        WorkOrderSpec(
            work_order_id=WO2,
            product="BR-OTHER",
            site="site2",
            line="line9",
            quantity=10,
            serial_prefix="BRX",
            serial_first=1,
            serial_last=20,
            valid_from=now - timedelta(minutes=1),
            valid_until=now + timedelta(days=1),
        ),
        now=now,
    )


def make_unit(
    api: httpx.Client, chip: str, work_order_id: str = WO, station: str = STATION
) -> Unit:
    key = ec.generate_private_key(ec.SECP256R1())
    r = api.post(
        "/v1/serials", json={"station_id": station, "work_order_id": work_order_id, "chip_id": chip}
    )
    assert r.status_code == 200, r.text
    serial = r.json()["serial"]
    r = api.post(
        "/v1/enrollments",
        json={
            "station_id": station,
            "work_order_id": work_order_id,
            "serial": serial,
            "chip_id": chip,
            "csr": csr_b64(key),
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    return Unit(serial, key, [body["certificate"], *body["chain"]])


def attest(api: httpx.Client, unit: Unit) -> dict[str, object]:
    r = api.post("/v1/attestations", json=evidence_body(unit, challenge(api, unit.serial)))
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def status_of(api: httpx.Client, serial: str) -> dict[str, object]:
    r = api.get(f"/v1/devices/{serial}/status")
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def counts(served: ServedBackend) -> dict[str, int]:
    with served.backend.engine.connect() as conn:
        found = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}  # noqa: S608
        # The record of the operator's (authorized) request is apart: what the action wrote.
        found["audit_events"] -= conn.execute(
            text("SELECT count(*) FROM audit_events WHERE event = 'operator.action'")
        ).scalar_one()
        found["revoked"] = conn.execute(
            text("SELECT count(*) FROM devices WHERE status <> 'active'")
        ).scalar_one()
        return found


def test_a_revoked_unit_fails_attestation_while_another_passes(api: httpx.Client) -> None:
    bad, good = make_unit(api, "CHIP-BAD"), make_unit(api, "CHIP-GOOD")
    r = api.post("/v1/revocations", json={"serial": bad.serial, "reason": "keyCompromise"})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "revoked"
    assert "status.revoked" in failed_ids(attest(api, bad))
    assert attest(api, good)["verdict"] == "pass"
    assert status_of(api, bad.serial)["reason"] == "keyCompromise"
    assert status_of(api, good.serial)["status"] == "active"


def test_a_hold_can_be_released_and_then_the_unit_passes_again(api: httpx.Client) -> None:
    unit = make_unit(api, "CHIP-A")
    r = api.post("/v1/revocations", json={"serial": unit.serial, "reason": "certificateHold"})
    assert (r.status_code, r.json()["status"]) == (201, "on_hold")
    assert "status.on_hold" in failed_ids(attest(api, unit))
    r = api.post(f"/v1/revocations/{unit.serial}/release")
    assert (r.status_code, r.json()["status"]) == (200, "active"), r.text
    assert attest(api, unit)["verdict"] == "pass"
    # a hold may become final; a final revocation may not be lifted
    api.post("/v1/revocations", json={"serial": unit.serial, "reason": "certificateHold"})
    r = api.post("/v1/revocations", json={"serial": unit.serial, "reason": "superseded"})
    assert (r.status_code, r.json()["status"]) == (201, "revoked")
    r = api.post(f"/v1/revocations/{unit.serial}/release")
    assert (r.status_code, r.json()["code"]) == (409, "revocation_final")


def test_a_recall_by_work_order_revokes_exactly_that_order(
    api: httpx.Client, served: ServedBackend
) -> None:
    seed_other_line(served)
    mine = [make_unit(api, f"CHIP-A{i}") for i in range(3)]
    others = [make_unit(api, f"CHIP-B{i}", WO2, "st-2") for i in range(2)]
    r = api.post("/v1/recalls/preview", json={"selection": {"work_order_id": WO}})
    assert r.status_code == 201, r.text
    preview = r.json()
    assert preview["count"] == 3
    assert sorted(preview["sample"]) == sorted(u.serial for u in mine)
    late = make_unit(api, "CHIP-LATE")  # enrolled after the preview: not in the recall
    before = counts(served)
    r = api.post(f"/v1/recalls/{preview['token']}/execute")
    assert r.status_code == 200, r.text
    assert r.json()["revoked"] == 3
    assert {status_of(api, u.serial)["status"] for u in mine} == {"revoked"}
    assert {status_of(api, u.serial)["status"] for u in [*others, late]} == {"active"}
    assert status_of(api, mine[0].serial)["recall_id"] == preview["recall_id"]
    after = counts(served)
    assert after["revocations"] == before["revocations"] + 3
    assert after["audit_events"] == before["audit_events"] + 1  # one record for the recall
    r = api.post(f"/v1/recalls/{preview['token']}/execute")
    assert (r.status_code, r.json()["code"]) == (409, "recall_executed")


def test_a_recall_whose_set_changed_is_refused_whole(
    api: httpx.Client, served: ServedBackend
) -> None:
    units = [make_unit(api, f"CHIP-{i}") for i in range(3)]
    token = api.post("/v1/recalls/preview", json={"selection": {"work_order_id": WO}}).json()[
        "token"
    ]
    api.post("/v1/revocations", json={"serial": units[0].serial, "reason": "keyCompromise"})
    before = counts(served)
    r = api.post(f"/v1/recalls/{token}/execute")
    assert (r.status_code, r.json()["code"]) == (409, "recall_stale")
    assert counts(served) == before


def test_selection_criteria_combine(api: httpx.Client) -> None:
    units = [make_unit(api, f"CHIP-{i}") for i in range(4)]
    serials = sorted(u.serial for u in units)
    cases = [
        ({"serials": serials[:2]}, 2),
        ({"serial_first": serials[1], "serial_last": serials[2]}, 2),
        ({"site": "site1", "line": "line1", "product": "BR-TEST"}, 4),
        ({"station_id": STATION, "serial_first": serials[3]}, 1),
        ({"enrolled_since": "2000-01-01T00:00:00Z", "enrolled_until": "2100-01-01T00:00:00Z"}, 4),
        ({"all": True}, 4),
    ]
    for selection, expected in cases:
        r = api.post("/v1/recalls/preview", json={"selection": selection})
        assert (r.status_code, r.json().get("count")) == (201, expected), (selection, r.text)


REV, PREVIEW = "/v1/revocations", "/v1/recalls/preview"
NAIVE = "2026-01-01T00:00:00"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        pytest.param("post", REV, {"serial": "NOPE-1", "reason": "keyCompromise"}, 404,
                     "device_unknown", id="unknown_serial"),
        pytest.param("post", REV, {"serial": "{unit}", "reason": "bogus"}, 400, "bad_reason",
                     id="bad_reason"),
        pytest.param("post", REV + "/{unit}/release", None, 409, "revocation_final",
                     id="lift_final"),
        pytest.param("post", REV, {"serial": "{unit}", "reason": "superseded"}, 409,
                     "already_revoked", id="revoke_twice"),
        pytest.param("post", PREVIEW, {"selection": {"work_order_id": "WO-NONE"}}, 400,
                     "recall_empty", id="empty_selection"),
        pytest.param("post", PREVIEW, {"selection": {}}, 400, "recall_needs_all",
                     id="no_criteria"),
        pytest.param("post", PREVIEW, {"selection": {"all": True, "site": "x"}}, 400,
                     "bad_selection", id="all_with_criteria"),
        pytest.param("post", PREVIEW, {"selection": {"enrolled_since": NAIVE}}, 422,
                     "validation_error", id="naive_time"),
        pytest.param("post", "/v1/recalls/AAAAAAAAAAAAAAAAAAAAAAAA/execute", None, 404,
                     "recall_unknown", id="unknown_token"),
        pytest.param("get", "/v1/devices/NOPE-1/status", None, 404, "device_unknown",
                     id="status_unknown"),
    ],
)  # fmt: skip
def test_bad_input_gets_a_json_error_and_changes_nothing(
    api: httpx.Client,
    served: ServedBackend,
    method: str,
    path: str,
    body: dict[str, object] | None,
    status: int,
    code: str,
) -> None:
    unit = make_unit(api, "CHIP-R")
    assert (
        api.post(
            "/v1/revocations", json={"serial": unit.serial, "reason": "keyCompromise"}
        ).status_code
        == 201
    )
    make_unit(api, "CHIP-S")
    if body is not None and body.get("serial") == "{unit}":
        body = {**body, "serial": unit.serial}
    before = counts(served)
    r = api.request(method, path.replace("{unit}", unit.serial), json=body)
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert r.json()["message"]
    assert counts(served) == before
