"""The per-product policy hook, a real HTTP server on 127.0.0.1, asked by the real service
before issuing (SQLite, PostgreSQL): allow, refuse with a reason, and every way of not
answering validly — slow, wrong key, down, replayed, malformed — refuses (fails closed)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import text

from birthright.policyhook.reference import ReferenceHook
from birthright.settings import Settings, write_settings_file
from tests.conftest import ServedBackend, free_port, seed_line
from tests.integration.test_ca_cli import cli, flat
from tests.integration.test_enrollment_api import STATION, WO, counts, csr_b64, reserve

PRODUCT = "BR-TEST"  # seed_line's product


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture
def hook(served: ServedBackend) -> Iterator[ReferenceHook]:
    seed_line(served, station_id=STATION, work_order_id=WO)
    running = ReferenceHook(
        ec.generate_private_key(ec.SECP256R1()),
        refuse_serials=r"00000003$",
        reason="serial 3 is kept for the golden sample",
    ).start()
    served.backend.policy_hooks.set(
        PRODUCT, url=running.url, public_key_pem=_pem(running.key), timeout_ms=300, now=_now()
    )
    try:
        yield running
    finally:
        running.stop()


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def api(served: ServedBackend, hook: ReferenceHook) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=10) as client:
        yield client


def enroll(api: httpx.Client, chip: str, key: ec.EllipticCurvePrivateKey) -> httpx.Response:
    serial = reserve(api, chip)
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


def last_audit(served: ServedBackend) -> tuple[str, str | None, dict[str, str]]:
    with served.backend.engine.connect() as c:
        event, code, detail = c.execute(
            text("SELECT event, code, detail FROM audit_events ORDER BY seq DESC LIMIT 1")
        ).one()
    return event, code, json.loads(detail)


def test_the_hook_is_told_the_unit_and_its_signed_allow_lets_issuance_go_on(
    api: httpx.Client, hook: ReferenceHook, served: ServedBackend
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    r = enroll(api, "CHIP-1", key)
    assert r.status_code == 201, r.text
    (query,) = hook.queries
    assert {k: query[k] for k in ("product", "station", "work_order", "serial", "chip_id")} == {
        "product": PRODUCT,
        "station": STATION,
        "work_order": WO,
        "serial": r.json()["serial"],
        "chip_id": "CHIP-1",
    }
    assert query["public_key"] == _pem(key).decode()
    assert query["request_id"] and len(query["nonce"]) >= 16 and query["timestamp"]
    event, code, detail = last_audit(served)
    assert (event, code, detail["policy_hook"]) == ("enrollment", None, "allow")
    # a retry of the same enrollment is answered without asking again
    again = api.post(
        "/v1/enrollments",
        json={
            "station_id": STATION,
            "work_order_id": WO,
            "serial": r.json()["serial"],
            "chip_id": "CHIP-1",
            "csr": csr_b64(key),
        },
    )
    assert again.status_code == 200 and len(hook.queries) == 1


def test_a_refusal_carries_the_hooks_reason_and_writes_only_its_audit_record(
    api: httpx.Client, served: ServedBackend
) -> None:
    for chip in ("CHIP-1", "CHIP-2"):
        assert enroll(api, chip, ec.generate_private_key(ec.SECP256R1())).status_code == 201
    serial = reserve(api, "CHIP-3")
    assert serial.endswith("00000003")
    before = counts(served)
    r = api.post(
        "/v1/enrollments",
        json={
            "station_id": STATION,
            "work_order_id": WO,
            "serial": serial,
            "chip_id": "CHIP-3",
            "csr": csr_b64(ec.generate_private_key(ec.SECP256R1())),
        },
    )
    assert (r.status_code, r.json()["code"]) == (403, "policy_hook_refused")
    assert "golden sample" in r.json()["message"]
    after = counts(served)
    assert after["audit_events"] == before["audit_events"] + 1
    assert {k: v for k, v in after.items() if k != "audit_events"} == {
        k: v for k, v in before.items() if k != "audit_events"
    }
    event, code, detail = last_audit(served)
    assert (event, code) == ("enrollment", "policy_hook_refused")
    assert "golden sample" in detail["message"]


def _other_key_hook(hook: ReferenceHook) -> None:
    hook.sign_with = ec.generate_private_key(ec.SECP256R1())


def _slow(hook: ReferenceHook) -> None:
    hook.delay_s = 1.5


def _malformed(hook: ReferenceHook) -> None:
    hook.raw_answer = b'{"decision": "allow"}'


def _replayed(hook: ReferenceHook) -> None:
    """The answer a first enrollment got, sent again for the next one."""
    hook.raw_answer = b"replay"  # replaced by the test with a recorded, validly signed answer


def _down(hook: ReferenceHook) -> None:
    hook.stop()


@pytest.mark.parametrize(
    "failure",
    [_other_key_hook, _slow, _malformed, _replayed, _down],
    ids=["wrong_key", "slow", "malformed", "replayed", "down"],
)
def test_no_valid_answer_in_time_refuses_the_unit(
    api: httpx.Client, hook: ReferenceHook, served: ServedBackend, failure: object
) -> None:
    if failure is _replayed:
        assert enroll(api, "CHIP-0", ec.generate_private_key(ec.SECP256R1())).status_code == 201
        recorded = hook.answers[-1]
        failure_fn = _replayed
        failure_fn(hook)
        hook.raw_answer = recorded
    else:
        assert callable(failure)
        failure(hook)
    before = counts(served)
    started = time.monotonic()
    r = enroll(api, "CHIP-X", ec.generate_private_key(ec.SECP256R1()))
    elapsed = time.monotonic() - started
    assert (r.status_code, r.json()["code"]) == (503, "policy_hook_unavailable"), r.text
    assert elapsed < 1.3  # the 300 ms limit held, not the hook's 1.5 s
    after = counts(served)
    assert after["devices"] == before["devices"]
    assert after["minted"] == before["minted"]
    assert last_audit(served)[:2] == ("enrollment", "policy_hook_unavailable")


def test_policy_hook_from_the_command_line_and_the_read_only_api(
    tmp_path: Path, settings: Settings, served: ServedBackend
) -> None:
    ws = settings.workspace  # the workspace ``served`` runs on; the CLI finds its database
    write_settings_file(settings, ("database_url",))
    key_file = tmp_path / "hook.pem"
    key_file.write_bytes(_pem(ec.generate_private_key(ec.SECP256R1())))
    url = f"http://127.0.0.1:{free_port()}/decide"
    done = cli(
        "product",
        "policy-hook",
        "set",
        "P-1",
        "--url",
        url,
        "--key",
        key_file,
        "--timeout-ms",
        "250",
        "-w",
        ws,
    )
    assert done.exit_code == 0, done.output
    assert "P-1" in flat(cli("product", "policy-hook", "list", "-w", ws).output)
    with httpx.Client(base_url=served.url, headers=served.auth, timeout=10) as http:
        got = http.get("/v1/products/P-1/policy-hook")
        assert got.status_code == 200
        assert (got.json()["url"], got.json()["timeout_ms"]) == (url, 250)
        assert got.json()["public_key"] == key_file.read_text()
        cleared = cli("product", "policy-hook", "clear", "P-1", "-w", ws)
        assert "removed" in cleared.output
        gone = http.get("/v1/products/P-1/policy-hook")
        assert (gone.status_code, gone.json()["code"]) == (404, "policy_hook_not_set")
    bad = cli(
        "product", "policy-hook", "set", "P-1", "--url", "ftp://x", "--key", key_file, "-w", ws
    )
    assert bad.exit_code != 0


def test_a_hook_trickling_its_answer_is_cut_at_the_time_limit(
    api: httpx.Client, hook: ReferenceHook, served: ServedBackend
) -> None:
    """Each byte arrives within the read timeout, the whole answer does not: refused."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n")
            for _ in range(200):
                if stop.wait(0.1):
                    return
                try:
                    conn.sendall(b" ")
                except OSError:
                    return

    threading.Thread(target=trickle, daemon=True).start()
    port = listener.getsockname()[1]
    served.backend.policy_hooks.set(
        PRODUCT,
        url=f"http://127.0.0.1:{port}/decide",
        public_key_pem=_pem(hook.key),
        timeout_ms=300,
        now=_now(),
    )
    started = time.monotonic()
    try:
        r = enroll(api, "CHIP-T", ec.generate_private_key(ec.SECP256R1()))
    finally:
        stop.set()
        listener.close()
    assert (r.status_code, r.json()["code"]) == (503, "policy_hook_unavailable")
    assert time.monotonic() - started < 2


def test_the_hook_is_not_told_about_units_the_backend_refuses_anyway(
    api: httpx.Client, hook: ReferenceHook
) -> None:
    serial = reserve(api, "CHIP-1")
    r = api.post(
        "/v1/enrollments",
        json={
            "station_id": STATION,
            "work_order_id": WO,
            "serial": serial,
            "chip_id": "CHIP-OTHER",  # not the chip the serial was reserved for
            "csr": csr_b64(ec.generate_private_key(ec.SECP256R1())),
        },
    )
    assert (r.status_code, r.json()["code"]) == (409, "serial_chip_mismatch")
    assert hook.queries == []
