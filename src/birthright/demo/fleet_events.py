"""Demo steps of fleet life: a relying service subscribes to revocation events and gets them
pushed, signed; a unit trades its factory identity for an operational certificate, and the
revoked unit is refused one (ADR 0011, 0012)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from cryptography.x509.oid import NameOID

from birthright.device.operational import request_operational_cert
from birthright.errors import BirthrightError
from birthright.relying.receiver import EventReceiver
from birthright.se.sim import DeviceSet

SUBSCRIBED = ("device.revoked", "recall.executed", "entitlement.suspended")


def subscribe_receiver(server: str, root_pem: Path, *, token: str) -> EventReceiver:
    """A relying service's receiver on a loopback port, subscribed (by an operator with
    ``events.manage``) with the event key."""
    verify = ssl.create_default_context(cafile=str(root_pem))
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server, verify=verify, headers=auth, timeout=10) as http:
        r = http.get("/v1/event-signing-key")
        r.raise_for_status()
        key = load_pem_public_key(r.json()["public_key"].encode())
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise TypeError("the event key is not an EC key")
        receiver = EventReceiver(key).start()
        body = {"url": receiver.url, "event_types": list(SUBSCRIBED), "description": "demo"}
        http.post("/v1/event-subscriptions", json=body).raise_for_status()
    return receiver


@dataclass(frozen=True)
class PushedEvents:
    revoked_serial: str
    revoked_delay_ms: float  # from the revocation's commit to its verified arrival
    recall_serials: int
    recall_events: int


def pushed_events(receiver: EventReceiver, revoked_serial: str) -> PushedEvents:
    got = receiver.wait_for("device.revoked", revoked_serial, timeout=15)
    delay = got.delay()
    receiver.wait_for("recall.executed", timeout=15)
    recalls = [e for e in receiver.events.values() if e["type"] == "recall.executed"]
    return PushedEvents(
        revoked_serial,
        delay.total_seconds() * 1000 if delay is not None else -1.0,
        sum(len(e["data"]["serials"]) for e in recalls),
        len(recalls),
    )


@dataclass(frozen=True)
class OperationalShow:
    serial: str
    issuer: str
    not_after: str
    revoked_refused: str  # the refusal code the revoked unit got ("" if it got one)


def operational_certificates(
    device_set: DeviceSet, server: str, root_pem: Path, *, live_label: str, revoked_label: str
) -> OperationalShow:
    verify = ssl.create_default_context(cafile=str(root_pem))
    with device_set.open(live_label) as se:
        cert = request_operational_cert(se, server, verify=verify)
    [serial] = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    [issuer] = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    refused = ""
    with device_set.open(revoked_label) as se:
        try:
            request_operational_cert(se, server, verify=verify)
        except BirthrightError as e:
            refused = e.code
    return OperationalShow(
        str(serial.value),
        str(issuer.value),
        cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC"),
        refused,
    )
