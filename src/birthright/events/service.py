"""Subscriptions of relying services to fleet events (operator use cases, audited)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from birthright.audit.events import AuditEvent
from birthright.errors import ConflictError, NotFoundError
from birthright.events.model import Subscription, check_types, check_url


@dataclass(frozen=True)
class DeliveryView:
    """One delivery of one event to one subscription, as an operator sees it."""

    delivery_id: int
    event_id: str
    event_type: str
    status: str  # pending | delivered | dead
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None


class SubscriptionStore(Protocol):
    def add(self, subscription: Subscription, audit: AuditEvent) -> None: ...

    def all(self) -> list[Subscription]: ...

    def remove(self, subscription_id: str, audit: AuditEvent, now: datetime) -> bool:
        """Delete it and its undelivered deliveries (audited); False when unknown."""
        ...

    def deliveries(self, subscription_id: str, limit: int) -> list[DeliveryView] | None:
        """Newest first; None when the subscription is unknown."""
        ...

    def redeliver(
        self, subscription_id: str, delivery_id: int, audit: AuditEvent, now: datetime
    ) -> str:
        """Make a dead delivery due now with fresh attempts (audited): ``done``, or
        ``unknown`` / ``not_dead`` and nothing changed."""
        ...


class SubscriptionService:
    def __init__(self, *, store: SubscriptionStore, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    def subscribe(
        self, url: str, event_types: Iterable[str], *, description: str = ""
    ) -> Subscription:
        now = self._clock()
        subscription = Subscription(
            subscription_id=f"sub_{secrets.token_hex(8)}",
            url=check_url(url),
            event_types=check_types(event_types),
            created_at=now,
            description=description,
        )
        audit = AuditEvent(
            event="events.subscribed",
            outcome="ok",
            detail={
                "subscription_id": subscription.subscription_id,
                "url": url,
                "event_types": list(subscription.event_types),
            },
        )
        self._store.add(subscription, audit)
        return subscription

    def all(self) -> list[Subscription]:
        return self._store.all()

    def unsubscribe(self, subscription_id: str) -> None:
        audit = AuditEvent(
            event="events.unsubscribed", outcome="ok", detail={"subscription_id": subscription_id}
        )
        if not self._store.remove(subscription_id, audit, self._clock()):
            raise _unknown(subscription_id)

    def deliveries(self, subscription_id: str, *, limit: int = 100) -> list[DeliveryView]:
        found = self._store.deliveries(subscription_id, limit)
        if found is None:
            raise _unknown(subscription_id)
        return found

    def redeliver(self, subscription_id: str, delivery_id: int) -> None:
        """Try a dead-lettered delivery again, from its first attempt (operator)."""
        audit = AuditEvent(
            event="events.redelivered",
            outcome="ok",
            detail={"subscription_id": subscription_id, "delivery_id": delivery_id},
        )
        outcome = self._store.redeliver(subscription_id, delivery_id, audit, self._clock())
        if outcome == "unknown":
            raise NotFoundError(
                f"subscription {subscription_id!r} has no delivery {delivery_id}",
                code="delivery_unknown",
            )
        if outcome == "not_dead":
            raise ConflictError(
                f"delivery {delivery_id} is not dead: it is delivered or still being tried",
                code="delivery_not_dead",
            )


def _unknown(subscription_id: str) -> NotFoundError:
    return NotFoundError(f"no subscription has id {subscription_id!r}", code="subscription_unknown")
