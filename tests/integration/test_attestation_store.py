"""The attestation store's hot path on a real database (SQLite and PostgreSQL): a nonce is spent
once however many verifiers race for it, and the firmware report never lowers a unit's floor."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from birthright.attest.verdict import AttestationResult, Finding
from birthright.db.attestation import SqlAttestationRecords, SqlNonceStore
from birthright.db.engine import make_engine, make_sessionmaker
from birthright.db.models import AuditEventRow, DeviceFirmwareRow, NonceRow
from birthright.types import Nonce, ProductSerial

SERIAL = "SN-STORE-1"
DIGEST = bytes(32)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _issue(sessions: sessionmaker[Session], nonce: str, now: datetime) -> None:
    SqlNonceStore(sessions).issue(
        Nonce(nonce), ProductSerial(SERIAL), now, now + timedelta(minutes=5)
    )


def test_a_nonce_raced_by_many_verifiers_is_spent_once(sessions: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    _issue(sessions, "raced-nonce-0001", now)
    nonces, records = SqlNonceStore(sessions), SqlAttestationRecords(sessions)
    barrier = threading.Barrier(8)
    outcomes: list[str | None] = []

    def attempt(i: int) -> None:
        barrier.wait()
        if i % 2:
            outcomes.append(nonces.consume("raced-nonce-0001", SERIAL, now))
        else:
            state = records.spend_and_read("raced-nonce-0001", SERIAL, now, "1.0.0")
            assert state.device is None and state.release is None
            outcomes.append(state.nonce)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(map(str, outcomes)) == ["replayed"] * 7 + ["valid"]


def test_spend_and_read_says_why_a_nonce_cannot_be_spent(sessions: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    records = SqlAttestationRecords(sessions)
    _issue(sessions, "another-device-01", now)
    _issue(sessions, "expired-nonce-001", now - timedelta(minutes=10))
    assert records.spend_and_read("never-issued-0001", SERIAL, now, None).nonce == "unknown"
    assert records.spend_and_read("another-device-01", "SN-OTHER", now, None).nonce == (
        "wrong_device"
    )
    assert records.spend_and_read("expired-nonce-001", SERIAL, now, None).nonce == "expired"
    # no nonce to spend (refused for its purpose): nothing is spent
    _issue(sessions, "kept-nonce-00001", now)
    assert records.spend_and_read(None, SERIAL, now, None).nonce is None
    with sessions() as s:
        kept = s.get(NonceRow, "kept-nonce-00001")
        assert kept is not None and kept.used_at is None
    assert records.spend_and_read("kept-nonce-00001", SERIAL, now, None).nonce == "valid"


def _passed(firmware: tuple[str, bytes], security_version: int | None) -> AttestationResult:
    return AttestationResult(
        serial=SERIAL,
        findings=(Finding("firmware", "pass", "firmware.allowed", "allowed"),),
        nonce="n",
        firmware=firmware,
        security_version=security_version,
    )


def test_the_firmware_report_lifts_the_floor_and_never_lowers_it(
    sessions: sessionmaker[Session],
) -> None:
    records = SqlAttestationRecords(sessions)
    now = datetime.now(UTC)
    records.record(_passed(("2.0.0", DIGEST), 3), now)  # first report: the row is inserted
    assert records.security_floor(SERIAL) == 3
    records.record(_passed(("1.5.0", DIGEST), 2), now + timedelta(seconds=1))
    assert records.security_floor(SERIAL) == 3
    records.record(_passed(("3.0.0", DIGEST), 5), now + timedelta(seconds=2))
    assert records.security_floor(SERIAL) == 5
    refused = AttestationResult(
        serial=SERIAL,
        findings=(Finding("firmware", "fail", "firmware.rollback", "older"),),
        nonce="n",
        firmware=("1.0.0", b"\x01" * 32),
    )
    records.record(refused, now + timedelta(seconds=3))  # reported, but no floor to raise
    assert records.security_floor(SERIAL) == 5
    assert records.spend_and_read(None, SERIAL, now, None).floor is None  # no such device
    with sessions() as s:
        row = s.get(DeviceFirmwareRow, SERIAL)
        assert row is not None
        assert (row.version, row.measurement) == ("1.0.0", b"\x01" * 32)
        events = s.execute(
            select(AuditEventRow.event).where(AuditEventRow.serial == SERIAL)
        ).scalars()
        assert sorted(events) == ["attestation", "device.first_contact"]
    contact = records.contact(SERIAL)
    assert contact is not None and contact[0] < contact[1]
    with sessions() as s:
        first = s.execute(
            select(func.count())
            .select_from(AuditEventRow)
            .where(AuditEventRow.event == "device.first_contact")
        ).scalar_one()
    assert first == 1
