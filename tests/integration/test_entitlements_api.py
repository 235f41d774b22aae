"""Entitlements over real HTTP: claims need the unit's own signature; transfer by the owner;
a revoked unit's entitlements are suspended; queries by serial, owner and plan."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

import httpx
import pytest
from sqlalchemy import text

from birthright.db.audit import list_events
from birthright.db.engine import make_sessionmaker
from tests.conftest import ServedBackend
from tests.integration.test_attestation_api import Unit, make_unit
from tests.integration.test_attestation_api import api as api
from tests.integration.test_device_auth_api import nonce_for, table_counts, token_body

TODAY = datetime.now(UTC).date()


def claim_body(unit: Unit, api: httpx.Client, **overrides: object) -> dict[str, object]:
    signer = overrides.pop("signer", unit)
    assert isinstance(signer, Unit)
    body: dict[str, object] = {
        "serial": unit.serial,
        "plan": "warranty-2y",
        "kind": "warranty",
        "starts_on": TODAY.isoformat(),
        "ends_on": date(TODAY.year + 2, TODAY.month, 1).isoformat(),
        "owner": "acct:alice",
    }
    body.update(token_body(signer, nonce_for(api, signer.serial)))
    body.update(overrides)
    return body


def test_a_unit_claims_its_warranty_and_owners_transfer_it(
    api: httpx.Client, served: ServedBackend
) -> None:
    unit = make_unit(api, "CHIP-A")
    r = api.post("/v1/entitlements/claims", json=claim_body(unit, api))
    assert r.status_code == 201, r.text
    assert (r.json()["owner"], r.json()["status"]) == ("acct:alice", "active")
    secret = r.json()["transfer_secret"]
    r = transfer(api, unit.serial, "acct:mallory", "acct:mallory", secret)
    assert (r.status_code, r.json()["code"]) == (403, "entitlement_not_owner")
    r = transfer(api, unit.serial, "acct:alice", "acct:bob", secret)
    assert r.status_code == 200 and r.json()["owner"] == "acct:bob"
    assert r.json()["transfer_secret"] != secret
    for query in ({"serial": unit.serial}, {"owner": "acct:bob"}, {"plan": "warranty-2y"}):
        found = api.get("/v1/entitlements", params=query).json()["entitlements"]
        assert [e["serial"] for e in found] == [unit.serial], query
    assert api.get("/v1/entitlements", params={"owner": "acct:alice"}).json() == {
        "entitlements": []
    }
    events = list_events(make_sessionmaker(served.backend.engine), limit=10)
    seen = [(e.event, e.outcome, e.code) for e in events]
    assert ("entitlement.transfer", "ok", None) in seen
    assert ("entitlement.transfer", "refused", "entitlement_not_owner") in seen
    assert ("entitlement.claim", "ok", None) in seen


def transfer(
    api: httpx.Client, serial: str, from_owner: str, to_owner: str, secret: str
) -> httpx.Response:
    return api.post(
        f"/v1/entitlements/{serial}/warranty-2y/transfer",
        json={"from_owner": from_owner, "to_owner": to_owner, "transfer_secret": secret},
    )


def test_a_transfer_needs_the_owners_current_secret_and_an_active_device(
    api: httpx.Client, served: ServedBackend
) -> None:
    unit = make_unit(api, "CHIP-A")
    r = api.post("/v1/entitlements/claims", json=claim_body(unit, api))
    first = r.json()["transfer_secret"]
    assert first.startswith("ets_")
    with served.backend.engine.connect() as conn:  # stored hashed, never as given
        stored = conn.execute(text("SELECT transfer_secret_hash FROM entitlements")).scalar_one()
    assert stored == hashlib.sha256(first.encode()).hexdigest()
    before = table_counts(served)
    wrong = transfer(api, unit.serial, "acct:alice", "acct:eve", "ets_" + "A" * 43)
    assert (wrong.status_code, wrong.json()["code"]) == (403, "entitlement_not_owner")
    moved = transfer(api, unit.serial, "acct:alice", "acct:bob", first)
    assert moved.status_code == 200, moved.text
    second = moved.json()["transfer_secret"]
    # a replay of the spent secret, even with the right owner named, moves nothing
    replay = transfer(api, unit.serial, "acct:bob", "acct:eve", first)
    assert (replay.status_code, replay.json()["code"]) == (403, "entitlement_not_owner")
    api.post("/v1/revocations", json={"serial": unit.serial, "reason": "certificateHold"})
    held = transfer(api, unit.serial, "acct:bob", "acct:carol", second)
    assert (held.status_code, held.json()["code"]) == (403, "device_revoked")
    unknown = api.post(
        f"/v1/entitlements/{unit.serial}/cloud-basic/transfer",
        json={"from_owner": "acct:bob", "to_owner": "acct:eve", "transfer_secret": second},
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "entitlement_unknown")
    [e] = api.get("/v1/entitlements", params={"serial": unit.serial}).json()["entitlements"]
    assert e["owner"] == "acct:bob"
    events = list_events(make_sessionmaker(served.backend.engine), limit=50)
    refused = [
        e.code for e in events if (e.event, e.outcome) == ("entitlement.transfer", "refused")
    ]
    assert sorted(str(c) for c in refused) == sorted(
        ["entitlement_not_owner", "entitlement_not_owner", "device_revoked", "entitlement_unknown"]
    )
    assert table_counts(served)["audit_events"] > before["audit_events"]
    assert second not in str(events) and first not in str(events)


def test_a_serial_read_off_a_label_cannot_claim(api: httpx.Client, served: ServedBackend) -> None:
    """Mallory has unit B and reads A's serial off its label: B's token does not prove A."""
    a, b = make_unit(api, "CHIP-A"), make_unit(api, "CHIP-B")
    before = table_counts(served)
    r = api.post("/v1/entitlements/claims", json=claim_body(a, api, signer=b))
    assert (r.status_code, r.json()["code"]) == (403, "entitlement_wrong_device")
    assert table_counts(served)["audit_events"] > before["audit_events"]
    assert api.get("/v1/entitlements", params={"serial": a.serial}).json()["entitlements"] == []


def test_no_token_or_a_forged_one_grants_nothing(api: httpx.Client) -> None:
    a = make_unit(api, "CHIP-A")
    body = claim_body(a, api)
    body["token"] = "AAAA"
    r = api.post("/v1/entitlements/claims", json=body)
    assert (r.status_code, r.json()["code"]) == (400, "device_auth_malformed")
    del body["token"]
    assert api.post("/v1/entitlements/claims", json=body).status_code == 422
    assert api.get("/v1/entitlements", params={"serial": a.serial}).json()["entitlements"] == []


def test_a_second_claim_of_the_same_plan_conflicts(api: httpx.Client) -> None:
    a = make_unit(api, "CHIP-A")
    assert api.post("/v1/entitlements/claims", json=claim_body(a, api)).status_code == 201
    r = api.post("/v1/entitlements/claims", json=claim_body(a, api, owner="acct:mallory"))
    assert (r.status_code, r.json()["code"]) == (409, "entitlement_exists")


def test_revocation_suspends_entitlements_and_refuses_new_claims(api: httpx.Client) -> None:
    a = make_unit(api, "CHIP-A")
    assert api.post("/v1/entitlements/claims", json=claim_body(a, api)).status_code == 201
    pending = claim_body(a, api, plan="cloud-basic", kind="subscription")
    r = api.post("/v1/revocations", json={"serial": a.serial, "reason": "certificateHold"})
    assert r.status_code == 201
    [held] = api.get("/v1/entitlements", params={"serial": a.serial}).json()["entitlements"]
    assert held["status"] == "suspended"
    r = api.post("/v1/entitlements/claims", json=pending)
    assert (r.status_code, r.json()["code"]) == (403, "device_revoked")
    api.post(f"/v1/revocations/{a.serial}/release").raise_for_status()
    [back] = api.get("/v1/entitlements", params={"serial": a.serial}).json()["entitlements"]
    assert back["status"] == "active"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"ends_on": "2000-01-01"}, "entitlement_invalid"),
        ({"ends_on": "2099-01-01"}, "entitlement_invalid"),
        ({"owner": "has space"}, "entitlement_invalid"),
    ],
    ids=["ends-before-start", "over-ten-years", "owner-not-printable"],
)
def test_bad_terms_are_refused(api: httpx.Client, overrides: dict[str, object], code: str) -> None:
    a = make_unit(api, "CHIP-A")
    r = api.post("/v1/entitlements/claims", json=claim_body(a, api, **overrides))
    assert (r.status_code, r.json()["code"]) == (400, code)


def test_a_query_needs_a_filter(api: httpx.Client) -> None:
    r = api.get("/v1/entitlements")
    assert (r.status_code, r.json()["code"]) == (400, "entitlement_query_empty")
