"""Rate limits: token buckets per client address and per station, answered with a JSON 429.

Limits live in each service process's memory: they shed floods, they are not invariants
(quotas, serials and nonces are enforced by the database). With N replicas behind a load
balancer the effective limit is N times the configured one. Memory is bounded: at most
``max_keys`` buckets are kept, the least recently used are dropped first (a dropped bucket
is a full one, so dropping only ever errs towards letting a client through).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from birthright.errors import RateLimitedError

#: Paths no client limit applies to (load-balancer probes).
EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})


class RateLimiter:
    """A token bucket per key: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limiter needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Spend one token of ``key``'s bucket: 0.0 when allowed, else seconds to wait."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                tokens -= 1.0
                wait = 0.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass(frozen=True)
class Limits:
    """The service's rate limits; ``None`` switches one off."""

    per_client: RateLimiter | None = None
    per_station: RateLimiter | None = None
    exempt: frozenset[str] = field(default=EXEMPT_PATHS)

    @classmethod
    def from_rates(
        cls,
        *,
        client_rate: float,
        client_burst: int,
        station_rate: float,
        station_burst: int,
    ) -> Limits:
        return cls(
            per_client=RateLimiter(rate=client_rate, burst=client_burst) if client_rate else None,
            per_station=(
                RateLimiter(rate=station_rate, burst=station_burst) if station_rate else None
            ),
        )

    def check_station(self, station_id: str) -> None:
        """Raise ``rate_limited`` when ``station_id`` has spent its budget."""
        if self.per_station is not None:
            wait = self.per_station.take(station_id)
            if wait:
                raise RateLimitedError(
                    f"station {station_id[:64]} is over its rate limit "
                    f"({self.per_station.rate:g} requests/s)",
                    retry_after=retry_after_seconds(wait),
                )


def retry_after_seconds(wait: float) -> int:
    """Whole seconds for a ``Retry-After`` header (never 0: 0 invites an instant retry)."""
    return max(1, math.ceil(wait))


class ClientRateLimit:
    """ASGI middleware: a 429 ``rate_limited`` for a client address over its budget."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = self.limits.per_client
        if limiter is None or scope["type"] != "http" or scope["path"] in self.limits.exempt:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = limiter.take(client[0] if client else "unknown")
        if not wait:
            await self.app(scope, receive, send)
            return
        seconds = retry_after_seconds(wait)
        response = JSONResponse(
            {
                "code": "rate_limited",
                "message": f"this address is over its rate limit ({limiter.rate:g} requests/s)",
                "retry_after": seconds,
            },
            status_code=429,
            headers={"Retry-After": str(seconds)},
        )
        await response(scope, receive, send)
