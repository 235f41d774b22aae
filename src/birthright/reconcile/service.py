"""The morning report as a use case: reconcile, render, sign, keep; and when it is due.

``ReportService`` takes its parts in (a figures source, the history port, a signer, a clock)
and never opens a session, a file or a socket itself. ``due_day`` is the schedule as a pure
function: the last complete UTC day whose report should exist at ``now``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from birthright.errors import InputError
from birthright.reconcile.history import (
    FORMATS,
    ReportEntry,
    ReportHistory,
    ReportNotFound,
    StoredReport,
    period_of,
)
from birthright.reconcile.render import RENDERERS, exception_list_csv
from birthright.reconcile.report import KINDS, Figures, Report, assemble

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    """Generate yesterday's report once a day, at ``daily_at`` (UTC) or at the first check
    after it; check every ``check_seconds``."""

    daily_at: time
    check_seconds: float


def due_day(now: datetime, daily_at: time) -> date:
    """The last day whose report is due at ``now``: yesterday once ``daily_at`` has passed
    today, else the day before yesterday."""
    today = now.date()
    passed = now.time().replace(tzinfo=None) >= daily_at
    return today - timedelta(days=1 if passed else 2)


class ReportService:
    def __init__(
        self,
        *,
        figures: Callable[[date | None], Figures],
        history: ReportHistory,
        sign: Callable[[bytes], bytes],
        clock: Callable[[], datetime],
        renderers: Mapping[str, Callable[[Report], bytes]] = RENDERERS,
    ) -> None:
        self._figures = figures
        self._history = history
        self._sign = sign
        self._clock = clock
        self._renderers = renderers

    @property
    def history(self) -> ReportHistory:
        return self._history

    def build(self, day: date | None) -> Report:
        return assemble(self._figures(day), day=day, now=self._clock())

    def publish(
        self, report: Report, formats: Iterable[str], *, trigger: str
    ) -> list[StoredReport]:
        """Render ``report`` in each format, sign each file, keep them all."""
        kept = []
        for fmt in formats:
            if fmt not in self._renderers:
                raise InputError(f"unknown report format {fmt!r}", code="bad_format")
            data = self._renderers[fmt](report)
            entry = ReportEntry(
                0,
                period_of(report.day),
                fmt,
                report.generated_at,
                trigger,
                hashlib.sha256(data).hexdigest(),
                len(data),
            )
            stored = StoredReport(entry, data, self._sign(data))
            kept.append(StoredReport(self._history.add(stored), data, stored.signature))
        return kept

    def generate(
        self, day: date | None, formats: Iterable[str] | None = None, *, trigger: str
    ) -> list[StoredReport]:
        """Reconcile ``day`` once and keep it in ``formats`` (default: every format)."""
        return self.publish(self.build(day), formats or self._renderers, trigger=trigger)

    def run_due(self, schedule: Schedule) -> list[StoredReport]:
        """The scheduled report for the due day, unless the schedule already made it."""
        day = due_day(self._clock(), schedule.daily_at)
        if self._history.scheduled(period_of(day)):
            return []
        kept = self.generate(day, trigger="schedule")
        log.info("scheduled report period=%s formats=%d", day.isoformat(), len(kept))
        return kept

    def fetch(self, period: str, fmt: str) -> StoredReport:
        if fmt not in FORMATS:
            raise InputError(f"unknown report format {fmt[:16]!r}", code="bad_format")
        stored = self._history.latest(period, fmt)
        if stored is None:
            raise ReportNotFound(f"no {fmt} report for {period} in the history")
        return stored

    def exception_list(self, period: str, kind: str) -> bytes:
        """Every serial of one exception kind, from the latest signed JSON report."""
        if kind not in KINDS:
            raise ReportNotFound(f"no exception list {kind[:32]!r}", code="exception_kind_unknown")
        body: dict[str, Any] = json.loads(self.fetch(period, "json").content)
        return exception_list_csv(kind, body.get("exceptions", {}).get(kind, []))
