"""Fleet events, pure parts: subscription checks, backoff, the signature a receiver verifies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from birthright.errors import BirthrightError
from birthright.events.model import DeliveryPolicy, Event, check_types, check_url
from birthright.events.signing import EventSigner
from birthright.relying.webhooks import DeliveryRefused, verify_delivery

T0 = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
KEY = ec.generate_private_key(ec.SECP256R1())
SIGNER = EventSigner(KEY)
EVENT = Event("evt_0123", "device.revoked", T0, {"serial": "BRS00000001"})


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://hooks.example.com/fleet", True),
        ("http://127.0.0.1:8080/events?x=1", True),
        ("ftp://example.com/", False),
        ("example.com/hook", False),
        ("http://", False),
        ("https://user:pw@example.com/", False),
        ("https://example.com/#frag", False),
        ("https://example.com:99999/", False),
        ("https://exa mple.com/", False),
        ("https://example.com/" + "a" * 2100, False),
    ],
)
def test_subscription_urls(url: str, ok: bool) -> None:
    if ok:
        assert check_url(url) == url
    else:
        with pytest.raises(BirthrightError) as e:
            check_url(url)
        assert e.value.code == "subscription_invalid"


def test_event_types_are_known_and_deduplicated() -> None:
    assert check_types(["device.revoked", "device.revoked"]) == ("device.revoked",)
    for bad in ([], ["device.revoked", "device.exploded"]):
        with pytest.raises(BirthrightError) as e:
            check_types(bad)
        assert e.value.code == "event_type_unknown"


def test_backoff_doubles_up_to_a_cap_then_dead_letters() -> None:
    policy = DeliveryPolicy(
        max_attempts=6, first_retry=timedelta(seconds=1), max_retry=timedelta(seconds=10)
    )
    delays = [policy.retry_after(n) for n in range(1, 7)]
    assert delays == [timedelta(seconds=s) for s in (1, 2, 4, 8, 10)] + [None]


def test_a_signed_delivery_verifies_and_any_change_does_not() -> None:
    body = EVENT.body()
    headers = SIGNER.headers(EVENT.event_id, body, T0)
    assert verify_delivery(headers, body, KEY.public_key(), now=T0)["data"] == EVENT.data
    cases = {
        "body": (headers, body.replace(b"0001", b"0002")),
        "timestamp": ({**headers, "webhook-timestamp": str(int(T0.timestamp()) + 1)}, body),
        "id": ({**headers, "webhook-id": "evt_other"}, body),
        "other key": (
            EventSigner(ec.generate_private_key(ec.SECP256R1())).headers(EVENT.event_id, body, T0),
            body,
        ),
    }
    for name, (h, b) in cases.items():
        with pytest.raises(DeliveryRefused) as e:
            verify_delivery(h, b, KEY.public_key(), now=T0)
        assert e.value.code == "event_signature_invalid", name
    with pytest.raises(DeliveryRefused) as e:
        verify_delivery(headers, body, KEY.public_key(), now=T0 + timedelta(minutes=6))
    assert e.value.code == "event_stale"


def test_the_body_is_canonical_and_names_its_id() -> None:
    parsed = json.loads(EVENT.body())
    assert parsed == {
        "id": "evt_0123",
        "type": "device.revoked",
        "occurred_at": T0.isoformat(),
        "data": {"serial": "BRS00000001"},
    }
    assert EVENT.body() == EVENT.body()


@given(
    headers=st.dictionaries(
        st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature", "x"]),
        st.text(max_size=80),
    ),
    body=st.binary(max_size=200),
)
def test_hostile_deliveries_are_refused_cleanly(headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(DeliveryRefused):
        verify_delivery(headers, body, KEY.public_key(), now=T0)
