"""Report history: every generated report kept with its detached signature."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from birthright.db.models import ReportRow
from birthright.db.repository import unit_of_work
from birthright.reconcile.history import ReportEntry, StoredReport

LIST_LIMIT = 1000


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _entry(row: ReportRow, size: int) -> ReportEntry:
    at = _utc(row.generated_at)
    return ReportEntry(row.id, row.period, row.format, at, row.trigger, row.sha256, size)


class SqlReportHistory:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def add(self, report: StoredReport) -> ReportEntry:
        e = report.entry
        with unit_of_work(self._sessions) as s:
            row = ReportRow(
                period=e.period,
                format=e.format,
                generated_at=e.generated_at,
                trigger=e.trigger,
                sha256=e.sha256,
                content=report.content,
                signature=report.signature,
            )
            s.add(row)
            s.flush()
            return _entry(row, len(report.content))

    def entries(self, period: str | None = None, *, limit: int = LIST_LIMIT) -> list[ReportEntry]:
        """Newest first; the content stays in the database."""
        r = ReportRow
        query = select(
            r.id, r.period, r.format, r.generated_at, r.trigger, r.sha256, func.length(r.content)
        )
        if period is not None:
            query = query.where(r.period == period)
        query = query.order_by(r.generated_at.desc(), r.id.desc()).limit(limit)
        with unit_of_work(self._sessions) as s:
            return [
                ReportEntry(
                    int(row[0]),
                    str(row[1]),
                    str(row[2]),
                    _utc(row[3]),
                    str(row[4]),
                    str(row[5]),
                    int(row[6]),
                )
                for row in s.execute(query)
            ]

    def latest(self, period: str, fmt: str) -> StoredReport | None:
        r = ReportRow
        query = (
            select(r)
            .where(r.period == period, r.format == fmt)
            .order_by(r.generated_at.desc(), r.id.desc())
            .limit(1)
        )
        with unit_of_work(self._sessions) as s:
            row = s.execute(query).scalar_one_or_none()
            if row is None:
                return None
            return StoredReport(_entry(row, len(row.content)), row.content, row.signature)

    def scheduled(self, period: str) -> bool:
        """Whether the schedule already produced the report for ``period``."""
        r = ReportRow
        query = select(r.id).where(r.period == period, r.trigger == "schedule").limit(1)
        with unit_of_work(self._sessions) as s:
            return s.execute(query).first() is not None
