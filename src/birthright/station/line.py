"""Walk every secure element connected to the station and provision each."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from birthright.se.base import SecureElement
from birthright.station.provision import Station, UnitOutcome

OpenDevice = Callable[[str], AbstractContextManager[SecureElement]]


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
) -> list[UnitOutcome]:
    outcomes = []
    for label in labels:
        with open_device(label) as se:
            outcome = station.provision(se, label=label)
        outcomes.append(outcome)
        on_unit(outcome)
    return outcomes
