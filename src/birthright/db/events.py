"""The event outbox and subscriptions in SQL (ADR 0012).

``write_event`` runs inside the caller's transaction, so an event exists exactly when the
change it reports committed. Deliveries are claimed with ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL (SQLite has one writer) and a conditional lease update, so replicas never post
the same delivery at once.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from birthright.audit.events import AuditEvent
from birthright.db.models import EventDeliveryRow, EventRow, EventSubscriptionRow
from birthright.db.repository import _utc, append_audit, unit_of_work
from birthright.events.dispatch import Delivery, Outcome
from birthright.events.model import Event, Subscription
from birthright.events.service import DeliveryView

D = EventDeliveryRow


def write_event(session: Session, event_type: str, data: dict[str, Any], now: datetime) -> str:
    """Record one event and a pending delivery per matching subscription; its id."""
    now = now.astimezone(UTC)
    event = Event(f"evt_{secrets.token_hex(12)}", event_type, now, data)
    session.add(
        EventRow(
            event_id=event.event_id,
            event_type=event_type,
            occurred_at=now,
            payload=event.body().decode(),
        )
    )
    # FOR KEY SHARE (PostgreSQL): an unsubscribe waits for this transaction instead of
    # pulling a subscription from under its new delivery rows.
    subscriptions = session.execute(
        select(EventSubscriptionRow.subscription_id, EventSubscriptionRow.event_types)
        .order_by(EventSubscriptionRow.subscription_id)
        .with_for_update(read=True, key_share=True)
    ).all()
    for subscription_id, types in subscriptions:
        if event_type in types.split(","):
            session.add(
                D(
                    event_id=event.event_id,
                    subscription_id=subscription_id,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
    return event.event_id


class SqlEventStore:
    """Subscriptions (``SubscriptionStore``) and deliveries (``DeliveryStore``)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    # -- subscriptions ----------------------------------------------------------------------

    def add(self, subscription: Subscription, audit: AuditEvent) -> None:
        with unit_of_work(self._sessions) as s:
            s.add(
                EventSubscriptionRow(
                    subscription_id=subscription.subscription_id,
                    url=subscription.url,
                    event_types=",".join(subscription.event_types),
                    description=subscription.description,
                    created_at=subscription.created_at,
                )
            )
            append_audit(s, audit, subscription.created_at)

    def all(self) -> list[Subscription]:
        with self._sessions() as s:
            rows = s.scalars(
                select(EventSubscriptionRow).order_by(EventSubscriptionRow.created_at)
            ).all()
            return [_subscription(r) for r in rows]

    def remove(self, subscription_id: str, audit: AuditEvent, now: datetime) -> bool:
        with unit_of_work(self._sessions) as s:
            row = s.get(EventSubscriptionRow, subscription_id, with_for_update=True)
            if row is None:
                return False
            s.execute(delete(D).where(D.subscription_id == subscription_id))
            s.delete(row)
            append_audit(s, audit, now)
        return True

    def deliveries(self, subscription_id: str, limit: int) -> list[DeliveryView] | None:
        with self._sessions() as s:
            if s.get(EventSubscriptionRow, subscription_id) is None:
                return None
            rows = s.execute(
                select(D, EventRow.event_type)
                .join(EventRow, EventRow.event_id == D.event_id)
                .where(D.subscription_id == subscription_id)
                .order_by(D.id.desc())
                .limit(limit)
            ).all()
            return [
                DeliveryView(
                    delivery_id=d.id,
                    event_id=d.event_id,
                    event_type=event_type,
                    status=d.status,
                    attempts=d.attempts,
                    next_attempt_at=_maybe(d.next_attempt_at),
                    delivered_at=_maybe(d.delivered_at),
                    last_error=d.last_error,
                )
                for d, event_type in rows
            ]

    def redeliver(
        self, subscription_id: str, delivery_id: int, audit: AuditEvent, now: datetime
    ) -> str:
        with unit_of_work(self._sessions) as s:
            row = s.get(D, delivery_id, with_for_update=True)
            if row is None or row.subscription_id != subscription_id:
                return "unknown"
            if row.status != "dead":
                return "not_dead"
            row.status, row.attempts, row.next_attempt_at = "pending", 0, now.astimezone(UTC)
            append_audit(s, audit, now)
        return "done"

    # -- deliveries -------------------------------------------------------------------------

    def claim_due(self, now: datetime, *, limit: int, lease_until: datetime) -> list[Delivery]:
        now, lease_until = now.astimezone(UTC), lease_until.astimezone(UTC)
        due = (D.status == "pending", D.next_attempt_at <= now)
        with unit_of_work(self._sessions) as s:
            ids = s.scalars(
                select(D.id)
                .where(*due)
                .order_by(D.next_attempt_at, D.id)
                .limit(limit)
                .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer
            ).all()
            if not ids:
                return []
            claimed = s.scalars(
                update(D)
                .where(D.id.in_(ids), *due)
                .values(attempts=D.attempts + 1, next_attempt_at=lease_until)
                .returning(D.id)
            ).all()
            rows = s.execute(
                select(
                    D.id,
                    D.event_id,
                    D.subscription_id,
                    EventSubscriptionRow.url,
                    EventRow.payload,
                    D.attempts,
                    D.created_at,
                )
                .join(EventRow, EventRow.event_id == D.event_id)
                .join(
                    EventSubscriptionRow,
                    EventSubscriptionRow.subscription_id == D.subscription_id,
                )
                .where(D.id.in_(claimed))
                .order_by(D.id)
            ).all()
        return [
            Delivery(
                r.id,
                r.event_id,
                r.subscription_id,
                r.url,
                r.payload.encode(),
                r.attempts,
                _utc(r.created_at),
            )
            for r in rows
        ]

    def record(self, outcomes: list[Outcome]) -> None:
        with unit_of_work(self._sessions) as s:
            for o in outcomes:
                at = o.at.astimezone(UTC)
                if o.delivered:
                    values: dict[str, Any] = {
                        "status": "delivered",
                        "delivered_at": at,
                        "next_attempt_at": None,
                        "last_error": None,
                    }
                elif o.retry_at is not None:
                    values = {"next_attempt_at": o.retry_at.astimezone(UTC), "last_error": o.error}
                else:
                    values = {"status": "dead", "next_attempt_at": None, "last_error": o.error}
                s.execute(
                    update(D).where(D.id == o.delivery_id, D.status == "pending").values(**values)
                )


def _maybe(value: datetime | None) -> datetime | None:
    return _utc(value) if value is not None else None


def _subscription(row: EventSubscriptionRow) -> Subscription:
    return Subscription(
        subscription_id=row.subscription_id,
        url=row.url,
        event_types=tuple(row.event_types.split(",")),
        created_at=_utc(row.created_at),
        description=row.description,
    )
