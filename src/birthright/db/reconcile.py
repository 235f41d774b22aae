"""Reconciliation storage: idempotent manifest imports and the set-based report queries.

Imports run in one transaction: a file with bad rows imports nothing unless the caller asks to
skip them. The natural keys make a second import of the same file add nothing
((serial, ship_date, carton) for shipments, the chip id for deliveries). Every comparison the
report needs is one SQL statement (GROUP BY, LEFT JOIN … IS NULL), never a Python loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    distinct,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from birthright.audit.events import AuditEvent
from birthright.db.models import (
    AlertRow,
    AuditEventRow,
    ChipDeliveryRow,
    DeviceRow,
    ShipmentRow,
    WorkOrderRow,
)
from birthright.db.repository import append_audit, unit_of_work
from birthright.reconcile.manifests import (
    ChipDelivery,
    ManifestRowsInvalid,
    Parsed,
    RowError,
    Shipment,
)
from birthright.reconcile.report import (
    AlertItem,
    Exception_,
    Figures,
    HourlyCount,
    WorkOrderFigures,
)

CHUNK = 10_000
REFUSAL_EVENTS = ("enrollment", "serial.reserve")


@dataclass(frozen=True)
class ImportResult:
    rows: int  # good rows in the file
    added: int
    already_present: int
    skipped: tuple[RowError, ...]  # bad rows left out (only with skip_bad)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _insert_ignoring_duplicates(
    session: Session, table: Table, rows: Sequence[dict[str, Any]]
) -> int:
    """INSERT … ON CONFLICT DO NOTHING in chunks; returns how many rows were new."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    if not rows:
        return 0
    # One statement executed for many rows (SQLAlchemy batches it as multi-row VALUES);
    # RETURNING lists only the rows inserted, so a re-import counts zero.
    statement = insert(table).on_conflict_do_nothing().returning(*table.primary_key.columns)
    added = 0
    for start in range(0, len(rows), CHUNK):
        added += len(session.execute(statement, list(rows[start : start + CHUNK])).all())
    return added


class ReconcileStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def import_shipments(
        self, parsed: Parsed[Shipment], *, source_sha256: str, skip_bad: bool, now: datetime
    ) -> ImportResult:
        with unit_of_work(self._sessions) as s:
            wanted = {r.work_order for r in parsed.records}
            known = set(
                s.execute(
                    select(WorkOrderRow.work_order_id).where(WorkOrderRow.work_order_id.in_(wanted))
                ).scalars()
            )
            errors = list(parsed.errors) + [
                RowError(r.line, f"unknown work order {r.work_order!r}")
                for r in parsed.records
                if r.work_order not in known
            ]
            _refuse_unless(errors, skip_bad)
            good = [r for r in parsed.records if r.work_order in known]
            added = _insert_ignoring_duplicates(
                s,
                ShipmentRow.__table__,  # type: ignore[arg-type]
                [
                    {
                        "serial": r.serial,
                        "work_order_id": r.work_order,
                        "ship_date": r.ship_date,
                        "carton": r.carton,
                        "pallet": r.pallet,
                        "destination": r.destination,
                        "source_sha256": source_sha256,
                        "source_line": r.line,
                        "imported_at": now,
                    }
                    for r in good
                ],
            )
            result = ImportResult(len(good), added, len(good) - added, _sorted(errors))
            _audit(s, "shipments.imported", source_sha256, result, now)
            return result

    def import_chips(
        self, parsed: Parsed[ChipDelivery], *, source_sha256: str, skip_bad: bool, now: datetime
    ) -> ImportResult:
        with unit_of_work(self._sessions) as s:
            errors = list(parsed.errors)
            _refuse_unless(errors, skip_bad)
            added = _insert_ignoring_duplicates(
                s,
                ChipDeliveryRow.__table__,  # type: ignore[arg-type]
                [
                    {
                        "chip_id": r.chip_id,
                        "vendor": r.vendor,
                        "delivered_at": r.delivered_at,
                        "source_sha256": source_sha256,
                        "imported_at": now,
                    }
                    for r in parsed.records
                ],
            )
            rows = len(parsed.records)
            result = ImportResult(rows, added, rows - added, _sorted(errors))
            _audit(s, "chips.imported", source_sha256, result, now)
            return result

    def figures(self, day: date | None) -> Figures:
        """Every count and exception list for ``day`` (UTC), or for all time."""
        with unit_of_work(self._sessions) as s:  # maps an unreachable database to our errors
            window = _Window(day)
            return Figures(
                work_orders=_work_order_figures(s, window),
                exceptions=(
                    *_enrolled_not_shipped(s, window),
                    *_shipped_not_enrolled(s, window),
                    *_shipped_twice(s, window),
                    *_foreign_chips(s, window),
                ),
                refused_by_code=_refusals(s, window),
                alerts=_alerts(s, window),
                minted_per_bucket=_minted_per_bucket(s, window),
                chips_delivered=int(
                    s.execute(select(func.count()).select_from(ChipDeliveryRow)).scalar_one()
                ),
            )


def _sorted(errors: Iterable[RowError]) -> tuple[RowError, ...]:
    return tuple(sorted(errors, key=lambda e: e.line))


def _refuse_unless(errors: list[RowError], skip_bad: bool) -> None:
    if errors and not skip_bad:
        raise ManifestRowsInvalid(_sorted(errors))


def _audit(s: Session, event: str, sha256: str, result: ImportResult, now: datetime) -> None:
    detail = {
        "sha256": sha256,
        "rows": result.rows,
        "added": result.added,
        "already_present": result.already_present,
        "skipped": len(result.skipped),
    }
    append_audit(s, AuditEvent(event=event, outcome="ok", detail=detail), now)


class _Window:
    """The report period: a UTC day, or everything."""

    def __init__(self, day: date | None) -> None:
        self.day = day
        self.start = datetime.combine(day, time(), UTC) if day else None
        self.end = self.start + timedelta(days=1) if self.start else None

    def at(self, column: Any) -> ColumnElement[bool]:
        if self.start is None or self.end is None:
            return true()
        return and_(column >= self.start, column < self.end)

    def shipped(self, column: Any) -> ColumnElement[bool]:
        return true() if self.day is None else and_(column == self.day)


def _work_order_figures(s: Session, w: _Window) -> tuple[WorkOrderFigures, ...]:
    d, sh, wo = DeviceRow, ShipmentRow, WorkOrderRow
    all_time = (
        select(d.work_order_id.label("wo"), func.count().label("n"))
        .group_by(d.work_order_id)
        .subquery()
    )
    minted = (
        select(d.work_order_id.label("wo"), func.count().label("n"))
        .where(w.at(d.enrolled_at))
        .group_by(d.work_order_id)
        .subquery()
    )
    shipped = (
        select(sh.work_order_id.label("wo"), func.count(distinct(sh.serial)).label("n"))
        .where(w.shipped(sh.ship_date))
        .group_by(sh.work_order_id)
        .subquery()
    )
    query = (
        select(
            wo.work_order_id,
            wo.site,
            wo.line,
            wo.quantity,
            func.coalesce(minted.c.n, 0),
            func.coalesce(all_time.c.n, 0),
            func.coalesce(shipped.c.n, 0),
        )
        .outerjoin(all_time, all_time.c.wo == wo.work_order_id)
        .outerjoin(minted, minted.c.wo == wo.work_order_id)
        .outerjoin(shipped, shipped.c.wo == wo.work_order_id)
    )
    if w.day is not None:
        query = query.where((minted.c.n > 0) | (shipped.c.n > 0))
    return tuple(
        WorkOrderFigures(str(r[0]), str(r[1]), str(r[2]), *(int(v) for v in r[3:]))
        for r in s.execute(query)
    )


def _exceptions(kind: str, rows: Iterable[Any]) -> list[Exception_]:
    return [Exception_(kind, str(r[0]), r[1], str(r[2]) if len(r) > 2 else "") for r in rows]


def _enrolled_not_shipped(s: Session, w: _Window) -> list[Exception_]:
    d, sh = DeviceRow, ShipmentRow
    query = (
        select(d.serial, d.work_order_id)
        .outerjoin(sh, sh.serial == d.serial)
        .where(sh.id.is_(None), w.at(d.enrolled_at))
        .order_by(d.serial)
    )
    return _exceptions("enrolled_not_shipped", s.execute(query))


def _shipped_not_enrolled(s: Session, w: _Window) -> list[Exception_]:
    d, sh = DeviceRow, ShipmentRow
    query = (
        select(sh.serial, func.min(sh.work_order_id))
        .outerjoin(d, d.serial == sh.serial)
        .where(d.id.is_(None), w.shipped(sh.ship_date))
        .group_by(sh.serial)
        .order_by(sh.serial)
    )
    return _exceptions("shipped_not_enrolled", s.execute(query))


def _shipped_twice(s: Session, w: _Window) -> list[Exception_]:
    sh = ShipmentRow
    query = select(sh.serial, func.min(sh.work_order_id), func.count()).group_by(sh.serial)
    if w.day is not None:
        today = select(sh.serial).where(sh.ship_date == w.day)
        query = query.where(sh.serial.in_(today))
    query = query.having(func.count() > 1).order_by(sh.serial)
    return _exceptions("shipped_twice", s.execute(query))


def _foreign_chips(s: Session, w: _Window) -> list[Exception_]:
    d, c = DeviceRow, ChipDeliveryRow
    query = (
        select(d.serial, d.work_order_id, d.chip_id)
        .outerjoin(c, c.chip_id == d.chip_id)
        .where(c.chip_id.is_(None), w.at(d.enrolled_at))
        .order_by(d.serial)
    )
    return _exceptions("foreign_chip", s.execute(query))


def _refusals(s: Session, w: _Window) -> dict[str, int]:
    a = AuditEventRow
    code = func.coalesce(a.code, literal_column("'unknown'")).label("code")
    query = (
        select(code, func.count())
        .where(a.event.in_(REFUSAL_EVENTS), a.outcome == "refused", w.at(a.at))
        .group_by(code)
    )
    return {str(code): int(n) for code, n in s.execute(query)}


def _alerts(s: Session, w: _Window) -> tuple[AlertItem, ...]:
    a = AlertRow
    rows = s.execute(select(a).where(w.at(a.at)).order_by(a.at, a.id)).scalars()
    return tuple(
        AlertItem(_utc(r.at), r.kind, r.severity, r.station_id, r.work_order_id, r.detail)
        for r in rows
    )


def _bucket(s: Session, column: Any, hourly: bool) -> ColumnElement[str]:
    if s.get_bind().dialect.name == "postgresql":
        pattern = 'YYYY-MM-DD"T"HH24' if hourly else "YYYY-MM-DD"
        return func.to_char(func.timezone("UTC", column), pattern)
    return func.strftime("%Y-%m-%dT%H" if hourly else "%Y-%m-%d", column)


def _minted_per_bucket(s: Session, w: _Window) -> tuple[HourlyCount, ...]:
    d, wo = DeviceRow, WorkOrderRow
    bucket = _bucket(s, d.enrolled_at, hourly=w.day is not None).label("bucket")
    query = (
        select(wo.site, wo.line, bucket, func.count())
        .join(wo, wo.work_order_id == d.work_order_id)
        .where(w.at(d.enrolled_at))
        .group_by(wo.site, wo.line, bucket)
    )
    return tuple(HourlyCount(str(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in s.execute(query))
