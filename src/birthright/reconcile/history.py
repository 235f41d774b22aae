"""Report history: what a stored report is, and the port that keeps them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from birthright.errors import InputError, NotFoundError

FORMATS = ("json", "csv", "html", "pdf")
ALL_TIME = "all-time"


class ReportNotFound(NotFoundError):
    code = "report_not_found"


class BadPeriod(InputError):
    code = "bad_period"


def period_of(day: date | None) -> str:
    return day.isoformat() if day else ALL_TIME


def parse_period(value: str) -> date | None:
    """``YYYY-MM-DD`` or ``all-time``; anything else is refused with ``bad_period``."""
    if value == ALL_TIME:
        return None
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise BadPeriod(f"{value[:32]!r} is not a day (YYYY-MM-DD) or {ALL_TIME!r}") from None


@dataclass(frozen=True)
class ReportEntry:
    id: int
    period: str  # "2026-11-26" or "all-time"
    format: str
    generated_at: datetime
    trigger: str
    sha256: str
    size: int


@dataclass(frozen=True)
class StoredReport:
    entry: ReportEntry
    content: bytes
    signature: bytes  # the detached ``.sig`` document


class ReportHistory(Protocol):
    def add(self, report: StoredReport) -> ReportEntry: ...

    def entries(self, period: str | None = None, *, limit: int = ...) -> list[ReportEntry]: ...

    def latest(self, period: str, fmt: str) -> StoredReport | None: ...

    def scheduled(self, period: str) -> bool: ...
