"""When the daily report is due, and what the service keeps (with in-memory history)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from birthright.reconcile.history import (
    BadPeriod,
    ReportEntry,
    ReportNotFound,
    StoredReport,
    parse_period,
)
from birthright.reconcile.report import Figures
from birthright.reconcile.service import ReportService, Schedule, due_day


@pytest.mark.parametrize(
    ("now", "at", "due"),
    [
        pytest.param(
            datetime(2026, 11, 27, 6, 0, tzinfo=UTC), time(6), date(2026, 11, 26), id="at"
        ),
        pytest.param(
            datetime(2026, 11, 27, 5, 59, tzinfo=UTC), time(6), date(2026, 11, 25), id="before"
        ),
        pytest.param(
            datetime(2026, 11, 27, 23, 0, tzinfo=UTC), time(6), date(2026, 11, 26), id="late"
        ),
        pytest.param(
            datetime(2026, 3, 1, 0, 0, tzinfo=UTC), time(0), date(2026, 2, 28), id="midnight"
        ),
        pytest.param(
            datetime(2027, 1, 1, 3, tzinfo=UTC), time(4), date(2026, 12, 30), id="new-year"
        ),
    ],
)
def test_due_day(now: datetime, at: time, due: date) -> None:
    assert due_day(now, at) == due


class MemoryHistory:
    def __init__(self) -> None:
        self.kept: list[StoredReport] = []

    def add(self, report: StoredReport) -> ReportEntry:
        e = report.entry
        entry = ReportEntry(
            len(self.kept) + 1, e.period, e.format, e.generated_at, e.trigger, e.sha256, e.size
        )
        self.kept.append(StoredReport(entry, report.content, report.signature))
        return entry

    def entries(self, period: str | None = None, *, limit: int = 100) -> list[ReportEntry]:
        return [k.entry for k in reversed(self.kept) if period in (None, k.entry.period)][:limit]

    def latest(self, period: str, fmt: str) -> StoredReport | None:
        found = [k for k in self.kept if (k.entry.period, k.entry.format) == (period, fmt)]
        return found[-1] if found else None

    def scheduled(self, period: str) -> bool:
        return any(k.entry.period == period and k.entry.trigger == "schedule" for k in self.kept)


EMPTY = Figures((), (), {}, (), (), 0)
NOW = datetime(2026, 11, 27, 7, tzinfo=UTC)


def service(history: MemoryHistory) -> ReportService:
    return ReportService(
        figures=lambda _day: EMPTY,
        history=history,
        sign=lambda data: b"sig:" + data[:8],
        clock=lambda: NOW,
        renderers={"json": lambda r: r.period.encode(), "csv": lambda r: b"c"},
    )


def test_the_schedule_runs_once_per_due_day_and_keeps_signed_files() -> None:
    history = MemoryHistory()
    kept = service(history).run_due(Schedule(time(6), 60))
    assert [(k.entry.period, k.entry.format, k.entry.trigger) for k in kept] == [
        ("2026-11-26", "json", "schedule"),
        ("2026-11-26", "csv", "schedule"),
    ]
    assert kept[0].content == b"2026-11-26" and kept[0].signature == b"sig:2026-11-"
    assert service(history).run_due(Schedule(time(6), 60)) == []
    assert len(history.kept) == 2


def test_fetch_refuses_unknown_formats_and_missing_reports() -> None:
    reports = service(MemoryHistory())
    with pytest.raises(ReportNotFound):
        reports.fetch("2026-11-26", "json")
    with pytest.raises(ReportNotFound) as missing:
        reports.exception_list("2026-11-26", "no_such_kind")
    assert missing.value.code == "exception_kind_unknown"


@pytest.mark.parametrize("value", ["2026-02-30", "26-11-27", "2026-11-27T00", "", "ALL-TIME"])
def test_bad_periods_are_refused(value: str) -> None:
    with pytest.raises(BadPeriod):
        parse_period(value)


def test_good_periods() -> None:
    assert parse_period("all-time") is None
    assert parse_period("2026-11-27") == date(2026, 11, 27)
