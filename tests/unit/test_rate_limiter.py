"""The token bucket behind the rate limits, on a frozen clock."""

from __future__ import annotations

import pytest

from birthright.errors import RateLimitedError
from birthright.server.limits import Limits, RateLimiter, retry_after_seconds


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_allowed_then_the_rate_refills_it() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    clock.now += 100
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0], "refill is capped at burst"
    assert limiter.take("a") > 0


def test_keys_are_independent() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, clock=Clock())
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    assert limiter.take("b") == 0.0


def test_memory_is_bounded_by_dropping_the_least_recently_used() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, clock=Clock(), max_keys=100)
    for i in range(10_000):
        limiter.take(f"k{i}")
    assert len(limiter) == 100


def test_a_refused_station_gets_a_rate_limited_error_with_whole_seconds() -> None:
    limits = Limits(per_station=RateLimiter(rate=0.25, burst=1, clock=Clock()))
    limits.check_station("st-1")
    with pytest.raises(RateLimitedError) as refused:
        limits.check_station("st-1")
    assert refused.value.code == "rate_limited"
    assert refused.value.http_status == 429
    assert refused.value.retry_after == 4
    assert retry_after_seconds(0.01) == 1


def test_zero_switches_a_limit_off() -> None:
    limits = Limits.from_rates(client_rate=0, client_burst=1, station_rate=0, station_burst=1)
    assert limits.per_client is None
    assert limits.per_station is None
    for _ in range(1000):
        limits.check_station("st-1")
