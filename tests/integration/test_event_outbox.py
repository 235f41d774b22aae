"""The event outbox in SQL (ADR 0012): events live and die with their transaction; claims
are exclusive and leased, on SQLite and PostgreSQL; PostgreSQL skips locked rows."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from birthright.audit.events import AuditEvent
from birthright.db.engine import make_engine, make_sessionmaker
from birthright.db.events import SqlEventStore, write_event
from birthright.db.models import EventDeliveryRow, EventRow
from birthright.db.repository import unit_of_work
from birthright.events.dispatch import Outcome
from birthright.events.model import Subscription

T0 = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


def _store(url: str) -> SqlEventStore:
    store = SqlEventStore(make_sessionmaker(make_engine(url)))
    sub = Subscription("sub_00000000000000aa", "http://127.0.0.1:9/x", ("device.revoked",), T0)
    store.add(sub, AuditEvent(event="events.subscribed", outcome="ok"))
    return store


def _emit(store: SqlEventStore, n: int, event_type: str = "device.revoked") -> None:
    with unit_of_work(store._sessions) as s:
        for i in range(n):
            write_event(s, event_type, {"serial": f"BRT{i}"}, T0)


def test_an_event_exists_only_if_its_transaction_commits(database_url: str) -> None:
    store = _store(database_url)

    class Crash(Exception):
        pass

    with pytest.raises(Crash), unit_of_work(store._sessions) as s:
        write_event(s, "device.revoked", {"serial": "BRT1"}, T0)
        raise Crash
    _emit(store, 1, "device.released")  # no subscriber: recorded, owed to nobody
    with store._sessions() as s:
        assert s.scalar(select(func.count()).select_from(EventRow)) == 1
        assert s.scalar(select(func.count()).select_from(EventDeliveryRow)) == 0


def test_claims_are_exclusive_leased_and_taken_again_after_a_crash(database_url: str) -> None:
    store = _store(database_url)
    _emit(store, 3)
    first = store.claim_due(T0, limit=2, lease_until=T0 + LEASE)
    second = store.claim_due(T0, limit=2, lease_until=T0 + LEASE)
    assert (len(first), len(second)) == (2, 1)
    assert {d.delivery_id for d in first}.isdisjoint(d.delivery_id for d in second)
    assert store.claim_due(T0 + LEASE / 2, limit=10, lease_until=T0 + LEASE) == []
    # the dispatcher holding them died: once the lease is over they are due again
    again = store.claim_due(T0 + LEASE, limit=10, lease_until=T0 + 2 * LEASE)
    assert sorted(d.delivery_id for d in again) == sorted(d.delivery_id for d in first + second)
    assert {d.attempts for d in again} == {2}
    store.record([Outcome(d.delivery_id, True, T0 + LEASE) for d in again])
    assert store.claim_due(T0 + 10 * LEASE, limit=10, lease_until=T0 + 11 * LEASE) == []


def test_postgresql_claims_skip_rows_another_replica_holds(postgres_url: str) -> None:
    store = _store(postgres_url)
    _emit(store, 2)
    engine = make_engine(postgres_url)
    with engine.connect() as other:  # another replica, mid-claim, holds the first row
        other.execute(text("BEGIN"))
        held = other.execute(
            text("SELECT id FROM event_deliveries ORDER BY id LIMIT 1 FOR UPDATE")
        ).scalar_one()
        started = time.monotonic()
        claimed = store.claim_due(T0, limit=10, lease_until=T0 + LEASE)
        assert time.monotonic() - started < 2  # skipped, not waited for
        assert held not in [d.delivery_id for d in claimed]
        assert len(claimed) == 1
        other.execute(text("ROLLBACK"))
    engine.dispose()
