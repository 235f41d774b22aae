"""Kill -9 the service after a revocation committed while its subscriber was down; start both
again: the event is delivered, once, signed (ADR 0012: the outbox survives the crash)."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from birthright.ca.authority import init_workspace_ca
from birthright.relying.receiver import EventReceiver
from birthright.server.backend import build_backend
from birthright.settings import Settings, write_settings_file
from tests.conftest import ServedBackend, free_port, seed_line
from tests.integration.test_enrollment_api import STATION, WO
from tests.integration.test_revocation_api import make_unit
from tests.integration.test_service_crash import start_service


def test_an_event_committed_before_a_crash_is_delivered_after_it(
    settings: Settings, tmp_path: Path
) -> None:
    # a delivery in flight at the kill is due again when its lease ends: keep that short
    settings = settings.model_copy(update={"event_lease_seconds": 6})
    write_settings_file(
        settings, ("database_url", "tls", "station_auth", "port", "event_lease_seconds")
    )
    init_workspace_ca(settings, now=datetime.now(UTC))
    seeder = build_backend(settings)  # in process, only to open the line and make a token
    seeded = ServedBackend(seeder, "")
    seed_line(seeded, station_id=STATION, work_order_id=WO)
    seeder.close()
    log = tmp_path / "serve.log"
    url = f"http://127.0.0.1:{settings.port}"
    receiver_port = free_port()
    service = start_service(settings, log)
    try:
        with httpx.Client(base_url=url, headers=seeded.auth, timeout=30) as api:
            pem = api.get("/v1/event-signing-key").json()["public_key"]
            body = {
                "url": f"http://127.0.0.1:{receiver_port}/events",
                "event_types": ["device.revoked"],
            }
            assert api.post("/v1/event-subscriptions", json=body).status_code == 201
            unit = make_unit(api, "CHIP-CRASH")
            assert api.post("/v1/revocations", json={"serial": unit.serial}).status_code == 422
            r = api.post("/v1/revocations", json={"serial": unit.serial, "reason": "keyCompromise"})
            assert r.status_code == 201, r.text
    finally:
        service.send_signal(signal.SIGKILL)
        service.wait()
    key = load_pem_public_key(pem.encode())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    receiver = EventReceiver(key, port=receiver_port).start()
    service = start_service(settings, log)
    try:
        got = receiver.wait_for("device.revoked", unit.serial, timeout=30)
        assert got.event is not None and got.event["data"]["reason"] == "keyCompromise"
        assert len(receiver.events) == 1
    finally:
        service.terminate()
        service.wait(timeout=10)
        receiver.stop()
