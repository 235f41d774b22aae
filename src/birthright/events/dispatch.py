"""Delivering the outbox: claim due deliveries, post them signed, record the outcome.

At least once: a delivery is claimed by a lease (its next attempt moved past the lease),
posted, then marked delivered; a dispatcher that dies mid-flight leaves the lease to expire
and another picks the delivery up again. Receivers deduplicate by the event id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from birthright.events.model import DeliveryPolicy
from birthright.events.signing import EventSigner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    delivery_id: int
    event_id: str
    subscription_id: str
    url: str
    body: bytes
    #: Attempts made, this one included.
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    delivered: bool
    at: datetime
    error: str | None = None
    #: When to try again; None once delivered or dead.
    retry_at: datetime | None = None


class DeliveryStore(Protocol):
    def claim_due(self, now: datetime, *, limit: int, lease_until: datetime) -> list[Delivery]:
        """Due pending deliveries, each leased to this caller (one claimer per row)."""
        ...

    def record(self, outcomes: list[Outcome]) -> None: ...


class PostFailed(Exception):
    """The receiver could not be reached or did not answer 2xx (message: why, no secrets)."""


#: Posts ``body`` with ``headers`` to ``url`` within ``timeout``; raises ``PostFailed``.
Post = Callable[[str, dict[str, str], bytes, timedelta], Awaitable[None]]


class Dispatcher:
    def __init__(
        self,
        *,
        store: DeliveryStore,
        signer: EventSigner,
        post: Post,
        policy: DeliveryPolicy,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._signer = signer
        self._post = post
        self._policy = policy
        self._clock = clock

    async def run_once(self) -> list[Outcome]:
        """One round: claim what is due, deliver it concurrently, record every outcome."""
        now = self._clock()
        claimed = await asyncio.to_thread(
            self._store.claim_due,
            now,
            limit=self._policy.batch,
            lease_until=now + self._policy.lease,
        )
        if not claimed:
            return []
        outcomes = list(await asyncio.gather(*(self._deliver(d) for d in claimed)))
        await asyncio.to_thread(self._store.record, outcomes)
        return outcomes

    async def _deliver(self, delivery: Delivery) -> Outcome:
        headers = self._signer.headers(delivery.event_id, delivery.body, self._clock())
        headers["content-type"] = "application/json"
        try:
            await self._post(delivery.url, headers, delivery.body, self._policy.timeout)
        except PostFailed as e:
            now = self._clock()
            delay = self._policy.retry_after(delivery.attempts)
            log.warning(
                "event delivery failed event_id=%s subscription=%s attempt=%d error=%s%s",
                delivery.event_id,
                delivery.subscription_id,
                delivery.attempts,
                e,
                "" if delay is not None else " (dead letter)",
            )
            retry_at = now + delay if delay is not None else None
            return Outcome(delivery.delivery_id, False, now, str(e)[:200], retry_at)
        return Outcome(delivery.delivery_id, True, self._clock())
