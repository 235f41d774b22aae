"""The line stops, backs off and resumes when the backend is away; it gives up after a bound."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from birthright.station.line import Backoff, LineStopped, provision_line
from birthright.station.provision import UnitOutcome


class FlakyStation:
    """Fails transiently ``outage`` times, then succeeds: a backend that comes back."""

    def __init__(self, outage: int) -> None:
        self.outage = outage
        self.calls: list[str] = []

    def provision(self, se: object, *, label: str) -> UnitOutcome:
        self.calls.append(label)
        if self.outage > 0:
            self.outage -= 1
            return UnitOutcome(label, ok=False, code="backend_unavailable", transient=True)
        return UnitOutcome(label, ok=True, action="enrolled")


@contextmanager
def no_device(_label: str) -> Iterator[object]:
    yield object()


def test_a_transient_outage_stops_the_line_then_resumes_with_the_same_unit() -> None:
    station = FlakyStation(outage=3)
    sleeps: list[float] = []
    stops: list[str] = []
    outcomes = provision_line(
        station,  # type: ignore[arg-type]
        ["u1", "u2"],
        no_device,  # type: ignore[arg-type]
        on_stop=lambda o, d: stops.append(o.label),
        backoff=Backoff(first=1, factor=2, ceiling=3),
        sleep=sleeps.append,
        clock=lambda: 0.0,
    )
    assert [o.ok for o in outcomes] == [True, True]
    assert station.calls == ["u1", "u1", "u1", "u1", "u2"]
    assert sleeps == [1, 2, 3]
    assert stops == ["u1", "u1", "u1"]


def test_the_line_gives_up_after_the_bound() -> None:
    ticks = iter(range(0, 1000, 10))
    with pytest.raises(LineStopped) as caught:
        provision_line(
            FlakyStation(outage=1000),  # type: ignore[arg-type]
            ["u1"],
            no_device,  # type: ignore[arg-type]
            backoff=Backoff(give_up_after=60),
            sleep=lambda _d: None,
            clock=lambda: float(next(ticks)),
        )
    assert caught.value.code == "line_stopped"


def test_a_unit_failure_that_is_not_transient_does_not_stop_the_line() -> None:
    class Refusing:
        def provision(self, se: object, *, label: str) -> UnitOutcome:
            return UnitOutcome(label, ok=False, code="key_shared")

    outcomes = provision_line(Refusing(), ["u1", "u2"], no_device)  # type: ignore[arg-type]
    assert [o.code for o in outcomes] == ["key_shared", "key_shared"]
