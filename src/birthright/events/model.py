"""Fleet events and subscriptions: plain values, checked when built."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from birthright.errors import InputError

#: Every event type a relying service may subscribe to.
EVENT_TYPES: tuple[str, ...] = (
    "device.revoked",
    "device.held",
    "device.released",
    "recall.executed",
    "entitlement.suspended",
    "entitlement.resumed",
)
#: Serials (or entitlements) per event of a recall: one event per chunk keeps bodies small.
CHUNK = 1000
MAX_URL = 2048


class SubscriptionInvalid(InputError):
    code = "subscription_invalid"


class UnknownEventType(InputError):
    code = "event_type_unknown"


def check_url(url: str) -> str:
    """An absolute http(s) URL with a host, no credentials, no fragment."""
    if not 1 <= len(url) <= MAX_URL or any(c.isspace() or ord(c) < 0x21 for c in url):
        raise SubscriptionInvalid(f"a subscription URL is 1-{MAX_URL} printable characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as e:
        raise SubscriptionInvalid(f"not a URL: {e}") from e
    if parts.scheme not in ("http", "https"):
        raise SubscriptionInvalid("a subscription URL must be http:// or https://")
    if not parts.hostname or parts.username or parts.password or parts.fragment:
        raise SubscriptionInvalid("a subscription URL needs a host and no credentials or #")
    return url


def check_types(types: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(types))
    if not chosen:
        raise UnknownEventType(f"name at least one event type: {', '.join(EVENT_TYPES)}")
    unknown = [t for t in chosen if t not in EVENT_TYPES]
    if unknown:
        raise UnknownEventType(
            f"unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}"
        )
    return chosen


@dataclass(frozen=True)
class Subscription:
    subscription_id: str
    url: str
    event_types: tuple[str, ...]
    created_at: datetime
    description: str = ""

    def __post_init__(self) -> None:
        check_url(self.url)
        check_types(self.event_types)
        if len(self.description) > 200:
            raise SubscriptionInvalid("a description is 200 characters at most")


@dataclass(frozen=True)
class Event:
    """One fact for relying services; ``body`` is what every delivery sends, byte for byte."""

    event_id: str
    event_type: str
    occurred_at: datetime
    data: dict[str, Any]

    def body(self) -> bytes:
        return json.dumps(
            {
                "id": self.event_id,
                "type": self.event_type,
                "occurred_at": self.occurred_at.isoformat(),
                "data": self.data,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()


def chunks(
    items: Sequence[Any], size: int | None = None
) -> Iterator[tuple[int, int, Sequence[Any]]]:
    """(part, parts, slice) over ``items`` (``CHUNK`` a slice), parts numbered from 1."""
    size = size or CHUNK
    parts = max(1, -(-len(items) // size))
    for i in range(parts):
        yield i + 1, parts, items[i * size : (i + 1) * size]


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard the dispatcher tries: exponential backoff, then the dead-letter state."""

    max_attempts: int = 10
    first_retry: timedelta = timedelta(seconds=1)
    max_retry: timedelta = timedelta(minutes=10)
    timeout: timedelta = timedelta(seconds=5)
    #: A claimed delivery is due again after this, should its dispatcher die mid-flight.
    lease: timedelta = timedelta(seconds=60)
    poll: timedelta = timedelta(seconds=0.5)
    batch: int = 50

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.batch < 1:
            raise ValueError("max_attempts and batch must be positive")
        if self.lease <= self.timeout:
            raise ValueError("the lease must outlast a delivery's timeout")

    def retry_after(self, attempts: int) -> timedelta | None:
        """Delay before the next attempt after ``attempts`` failures; None: dead letter."""
        if attempts >= self.max_attempts:
            return None
        delay: timedelta = self.first_retry * (2 ** (attempts - 1))
        return min(delay, self.max_retry)
