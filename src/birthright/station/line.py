"""Walk every secure element connected to the station and provision each.

Fail closed: when the backend cannot be reached the line stops (no unit is scrapped for it),
retries with exponential backoff, and resumes with the same unit once the backend answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from birthright.errors import TransientError
from birthright.se.base import SecureElement
from birthright.station.provision import Station, UnitOutcome

OpenDevice = Callable[[str], AbstractContextManager[SecureElement]]


class LineStopped(TransientError):
    code = "line_stopped"


@dataclass(frozen=True)
class Backoff:
    first: float = 0.5
    factor: float = 2.0
    ceiling: float = 30.0
    #: Give up (and exit non-zero) when the backend stays away this long.
    give_up_after: float = 600.0


@dataclass(frozen=True)
class RunSummary:
    outcomes: tuple[UnitOutcome, ...]
    seconds: float

    @property
    def good(self) -> int:
        return sum(1 for o in self.outcomes if o.ok)

    @property
    def failed(self) -> int:
        return len(self.outcomes) - self.good

    @property
    def units_per_second(self) -> float:
        return self.good / self.seconds if self.seconds > 0 else 0.0


def provision_line(
    station: Station,
    labels: Iterable[str],
    open_device: OpenDevice,
    *,
    on_unit: Callable[[UnitOutcome], None] = lambda _o: None,
    on_stop: Callable[[UnitOutcome, float], None] = lambda _o, _d: None,
    backoff: Backoff = Backoff(),
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[UnitOutcome]:
    outcomes = []
    for label in labels:
        outage_since: float | None = None
        delay = backoff.first
        while True:
            with open_device(label) as se:
                outcome = station.provision(se, label=label)
            if not outcome.transient:
                break
            now = clock()
            outage_since = now if outage_since is None else outage_since
            if now - outage_since >= backoff.give_up_after:
                raise LineStopped(
                    f"the backend has been unreachable for {now - outage_since:.0f} s "
                    f"({outcome.code}: {outcome.reason}); the line stays stopped"
                )
            on_stop(outcome, delay)
            sleep(delay)
            delay = min(delay * backoff.factor, backoff.ceiling)
        outcomes.append(outcome)
        on_unit(outcome)
    return outcomes
