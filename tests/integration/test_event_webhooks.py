"""Signed webhook deliveries of fleet events over real HTTP on 127.0.0.1 (ADR 0012):
a real receiver, the real service with its dispatcher, SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy import text

from birthright.ca.authority import FactoryCa
from birthright.relying.receiver import EventReceiver
from birthright.relying.webhooks import DeliveryRefused, verify_delivery
from birthright.server.backend import build_backend
from birthright.settings import Settings
from tests.conftest import ServedBackend, ThreadServer, free_port, seed_line
from tests.integration.test_enrollment_api import STATION, WO
from tests.integration.test_entitlements_api import claim_body
from tests.integration.test_revocation_api import make_unit


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """A fast dispatcher: quick polls and retries, three attempts."""
    return settings.model_copy(
        update={
            "event_poll_seconds": 0.1,
            "event_first_retry_seconds": 0.2,
            "event_max_attempts": 3,
            "event_timeout_seconds": 2.0,
        }
    )


@pytest.fixture
def served_events(fast: Settings, factory_ca: FactoryCa) -> Iterator[ServedBackend]:
    backend = build_backend(fast, ca=factory_ca)
    server = ThreadServer(backend, fast.port)
    server.start()
    try:
        yield ServedBackend(backend, f"http://127.0.0.1:{fast.port}")
    finally:
        server.stop()
        backend.close()


@pytest.fixture
def api(served_events: ServedBackend) -> Iterator[httpx.Client]:
    seed_line(served_events, station_id=STATION, work_order_id=WO)
    with httpx.Client(base_url=served_events.url, headers=served_events.auth, timeout=30) as client:
        yield client


@pytest.fixture
def event_key(api: httpx.Client) -> ec.EllipticCurvePublicKey:
    r = api.get("/v1/event-signing-key")
    assert r.status_code == 200, r.text
    assert r.json()["algorithm"] == "es256"
    key = load_pem_public_key(r.json()["public_key"].encode())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


@pytest.fixture
def receiver(event_key: ec.EllipticCurvePublicKey) -> Iterator[EventReceiver]:
    found = EventReceiver(event_key).start()
    yield found
    found.stop()


def subscribe(api: httpx.Client, url: str, *types: str) -> str:
    r = api.post("/v1/event-subscriptions", json={"url": url, "event_types": list(types)})
    assert r.status_code == 201, r.text
    return str(r.json()["subscription_id"])


def deliveries(api: httpx.Client, subscription_id: str) -> list[dict[str, object]]:
    r = api.get(f"/v1/event-subscriptions/{subscription_id}/deliveries")
    assert r.status_code == 200, r.text
    found: list[dict[str, object]] = r.json()["deliveries"]
    return found


def wait_until(check: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def revoke(api: httpx.Client, serial: str, reason: str = "keyCompromise") -> httpx.Response:
    return api.post("/v1/revocations", json={"serial": serial, "reason": reason})


def event_count(served: ServedBackend) -> int:
    with served.backend.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM events")).scalar_one())


def test_a_revocation_reaches_the_subscriber_signed_within_seconds(
    api: httpx.Client, receiver: EventReceiver, event_key: ec.EllipticCurvePublicKey
) -> None:
    sub = subscribe(api, receiver.url, "device.revoked")
    unit, other = make_unit(api, "CHIP-1"), make_unit(api, "CHIP-2")
    started = time.monotonic()
    assert revoke(api, unit.serial).status_code == 201
    got = receiver.wait_for("device.revoked", unit.serial, timeout=5)
    assert got.at - started < 5
    assert got.event is not None
    assert got.event["data"]["reason"] == "keyCompromise"
    assert got.event["id"] == got.headers["webhook-id"]
    # the receiver verified it; so does the verify function, and a tampered body fails
    now = datetime.now(UTC)
    assert verify_delivery(got.headers, got.body, event_key, now=now)["type"] == "device.revoked"
    tampered = got.body.replace(unit.serial.encode(), other.serial.encode())
    with pytest.raises(DeliveryRefused) as refused:
        verify_delivery(got.headers, tampered, event_key, now=now)
    assert refused.value.code == "event_signature_invalid"
    with pytest.raises(DeliveryRefused) as stale:
        verify_delivery(got.headers, got.body, event_key, now=now + timedelta(minutes=6))
    assert stale.value.code == "event_stale"
    # the outcome is recorded just after the receiver answered
    wait_until(lambda: deliveries(api, sub)[0]["status"] == "delivered")
    [delivery] = deliveries(api, sub)
    assert delivery["attempts"] == 1


def test_a_refused_revocation_creates_no_event(
    api: httpx.Client, served_events: ServedBackend, receiver: EventReceiver
) -> None:
    sub = subscribe(api, receiver.url, "device.revoked", "device.held", "device.released")
    unit = make_unit(api, "CHIP-1")
    assert revoke(api, unit.serial).status_code == 201
    receiver.wait_for("device.revoked", unit.serial)
    before = event_count(served_events)
    assert revoke(api, unit.serial).json()["code"] == "already_revoked"
    assert revoke(api, "BRT-NONE").json()["code"] == "device_unknown"
    assert api.post(f"/v1/revocations/{unit.serial}/release").json()["code"] == "revocation_final"
    time.sleep(0.5)  # several dispatcher rounds
    assert event_count(served_events) == before
    assert len(deliveries(api, sub)) == 1
    assert len(receiver.posts) == 1


def test_a_failing_receiver_gets_the_same_event_on_retry(
    api: httpx.Client, receiver: EventReceiver
) -> None:
    sub = subscribe(api, receiver.url, "device.held")
    receiver.fail_next = 2
    unit = make_unit(api, "CHIP-1")
    assert revoke(api, unit.serial, "certificateHold").status_code == 201
    receiver.wait_for("device.held", unit.serial)
    assert [p.refused for p in receiver.posts] == ["failed on purpose"] * 2 + [None]
    assert len({p.headers["webhook-id"] for p in receiver.posts}) == 1  # a stable event id
    assert len({p.body for p in receiver.posts}) == 1
    wait_until(lambda: deliveries(api, sub)[0]["status"] == "delivered")
    assert deliveries(api, sub)[0]["attempts"] == 3


def test_a_receiver_that_was_down_gets_the_event_when_it_is_back(
    api: httpx.Client, event_key: ec.EllipticCurvePublicKey
) -> None:
    port = free_port()
    sub = subscribe(api, f"http://127.0.0.1:{port}/events", "device.revoked")
    unit = make_unit(api, "CHIP-1")
    assert revoke(api, unit.serial).status_code == 201
    wait_until(lambda: deliveries(api, sub)[0]["last_error"] is not None)
    assert deliveries(api, sub)[0]["status"] == "pending"
    back = EventReceiver(event_key, port=port).start()
    try:
        assert back.wait_for("device.revoked", unit.serial).event is not None
    finally:
        back.stop()


def test_a_receiver_that_never_answers_is_dead_lettered(
    api: httpx.Client, receiver: EventReceiver
) -> None:
    sub = subscribe(api, receiver.url, "device.revoked")
    receiver.fail_next = 100
    unit = make_unit(api, "CHIP-1")
    assert revoke(api, unit.serial).status_code == 201
    wait_until(lambda: deliveries(api, sub)[0]["status"] == "dead")
    [dead] = deliveries(api, sub)
    assert (dead["attempts"], dead["last_error"]) == (3, "HTTP 500")
    time.sleep(0.6)
    assert len(receiver.posts) == 3  # no attempt after the last
    # the receiver is mended; an operator re-drives the dead delivery
    receiver.fail_next = 0
    redrive = f"/v1/event-subscriptions/{sub}/deliveries/{dead['delivery_id']}/redeliver"
    assert api.post(redrive).status_code == 202
    assert receiver.wait_for("device.revoked", unit.serial).event is not None
    wait_until(lambda: deliveries(api, sub)[0]["status"] == "delivered")
    r = api.post(redrive)
    assert (r.status_code, r.json()["code"]) == (409, "delivery_not_dead")
    r = api.post(f"/v1/event-subscriptions/{sub}/deliveries/999999/redeliver")
    assert (r.status_code, r.json()["code"]) == (404, "delivery_unknown")


def test_a_recall_is_one_batch_event_listing_its_serials(
    api: httpx.Client, receiver: EventReceiver
) -> None:
    subscribe(api, receiver.url, "recall.executed")
    units = [make_unit(api, f"CHIP-{i}") for i in range(3)]
    r = api.post("/v1/recalls/preview", json={"selection": {"work_order_id": WO}})
    assert r.status_code == 201, r.text
    assert api.post(f"/v1/recalls/{r.json()['token']}/execute").status_code == 200
    got = receiver.wait_for("recall.executed")
    assert got.event is not None
    data = got.event["data"]
    assert sorted(data["serials"]) == sorted(u.serial for u in units)
    assert (data["count"], data["part"], data["parts"]) == (3, 1, 1)


def test_subscriptions_are_listed_and_removed_and_bad_ones_refused(
    api: httpx.Client, receiver: EventReceiver
) -> None:
    sub = subscribe(api, receiver.url, "device.revoked", "entitlement.suspended")
    listed = api.get("/v1/event-subscriptions").json()["subscriptions"]
    assert [(s["subscription_id"], s["event_types"]) for s in listed] == [
        (sub, ["device.revoked", "entitlement.suspended"])
    ]
    bad = [
        ({"url": "ftp://127.0.0.1/x", "event_types": ["device.revoked"]}, "subscription_invalid"),
        ({"url": "http://", "event_types": ["device.revoked"]}, "subscription_invalid"),
        (
            {"url": "http://u:p@example.com/", "event_types": ["device.revoked"]},
            "subscription_invalid",
        ),
        ({"url": receiver.url, "event_types": ["device.exploded"]}, "event_type_unknown"),
        ({"url": receiver.url, "event_types": []}, "validation_error"),
    ]
    for body, code in bad:
        r = api.post("/v1/event-subscriptions", json=body)
        assert r.status_code in (400, 422) and r.json()["code"] == code, (body, r.text)
    assert api.delete(f"/v1/event-subscriptions/{sub}").status_code == 204
    assert api.get("/v1/event-subscriptions").json()["subscriptions"] == []
    r = api.delete(f"/v1/event-subscriptions/{sub}")
    assert (r.status_code, r.json()["code"]) == (404, "subscription_unknown")
    # with no subscriber, a revocation still records its event, and owes it to nobody
    unit = make_unit(api, "CHIP-1")
    assert revoke(api, unit.serial).status_code == 201


def test_a_revocation_suspends_the_units_entitlements_for_subscribers(
    api: httpx.Client, receiver: EventReceiver
) -> None:
    subscribe(api, receiver.url, "entitlement.suspended", "entitlement.resumed")
    unit = make_unit(api, "CHIP-1")
    r = api.post("/v1/entitlements/claims", json=claim_body(unit, api))
    assert r.status_code == 201, r.text
    assert revoke(api, unit.serial, "certificateHold").status_code == 201
    got = receiver.wait_for("entitlement.suspended", unit.serial)
    assert got.event is not None
    [entitlement] = got.event["data"]["entitlements"]
    assert (entitlement["plan"], entitlement["owner"]) == ("warranty-2y", "acct:alice")
    assert got.event["data"]["cause"] == "device.held"
    assert api.post(f"/v1/revocations/{unit.serial}/release").status_code == 200
    assert receiver.wait_for("entitlement.resumed", unit.serial).event is not None


def test_two_replicas_deliver_each_event_once(
    api: httpx.Client, fast: Settings, factory_ca: FactoryCa, receiver: EventReceiver
) -> None:
    """A second service on the same database polls too: claims keep the two apart."""
    twin = build_backend(fast, ca=factory_ca)  # same workspace and database, its own dispatcher
    other = ThreadServer(twin, free_port())
    other.start()
    try:
        subscribe(api, receiver.url, "device.revoked")
        units = [make_unit(api, f"CHIP-{i}") for i in range(8)]
        for unit in units:
            assert revoke(api, unit.serial).status_code == 201
        for unit in units:
            receiver.wait_for("device.revoked", unit.serial)
        time.sleep(0.5)  # let any double delivery show
        ids = [p.headers["webhook-id"] for p in receiver.posts]
        assert len(ids) == len(set(ids)) == len(units)
    finally:
        other.stop()
        twin.close()
