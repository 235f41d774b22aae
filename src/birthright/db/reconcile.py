"""Reconciliation storage: idempotent manifest imports and the set-based report queries.

Imports run in one transaction: a file with bad rows imports nothing unless the caller asks to
skip them. The natural keys make a second import of the same file add nothing
((serial, ship_date, carton) for shipments, the chip id for deliveries). Every comparison the
report needs is one SQL statement (``reconcile_queries``), never a Python loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from birthright.audit.events import AuditEvent
from birthright.db.models import ChipDeliveryRow, ShipmentRow, WorkOrderRow
from birthright.db.reconcile_queries import compute_figures
from birthright.db.repository import append_audit, unit_of_work
from birthright.errors import BirthrightError
from birthright.reconcile.manifests import (
    ChipDelivery,
    ManifestRowsInvalid,
    Parsed,
    RowError,
    Shipment,
)
from birthright.reconcile.report import Figures

CHUNK = 10_000


@dataclass(frozen=True)
class ImportResult:
    rows: int  # good rows in the file
    added: int
    already_present: int
    skipped: tuple[RowError, ...]  # bad rows left out (only with skip_bad)


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
        try:
            return self._import_shipments(parsed, source_sha256, skip_bad, now)
        except ManifestRowsInvalid as e:
            self.record_refusal("shipments.import", source_sha256, e, now)
            raise

    def import_chips(
        self, parsed: Parsed[ChipDelivery], *, source_sha256: str, skip_bad: bool, now: datetime
    ) -> ImportResult:
        try:
            return self._import_chips(parsed, source_sha256, skip_bad, now)
        except ManifestRowsInvalid as e:
            self.record_refusal("chips.import", source_sha256, e, now)
            raise

    def record_refusal(
        self, event: str, source_sha256: str, error: BirthrightError, now: datetime
    ) -> None:
        """Audit a refused import (nothing else is written): the file's hash and why."""
        detail: dict[str, Any] = {"sha256": source_sha256, "message": error.message[:500]}
        if isinstance(error, ManifestRowsInvalid):
            detail["bad_rows"] = len(error.errors)
            detail["first"] = [
                {"line": r.line, "entry": r.entry, "code": r.code, "reason": r.reason[:200]}
                for r in error.errors[:10]
            ]
        with unit_of_work(self._sessions) as s:
            append_audit(
                s, AuditEvent(event=event, outcome="refused", code=error.code, detail=detail), now
            )

    def _import_shipments(
        self, parsed: Parsed[Shipment], source_sha256: str, skip_bad: bool, now: datetime
    ) -> ImportResult:
        with unit_of_work(self._sessions) as s:
            wanted = {r.work_order for r in parsed.records}
            known = set(
                s.execute(
                    select(WorkOrderRow.work_order_id).where(WorkOrderRow.work_order_id.in_(wanted))
                ).scalars()
            )
            errors = list(parsed.errors) + [
                RowError(r.line, f"unknown work order {r.work_order!r}", code="work_order_unknown")
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

    def _import_chips(
        self, parsed: Parsed[ChipDelivery], source_sha256: str, skip_bad: bool, now: datetime
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

    def figures(self, day: date | None, *, timings: dict[str, float] | None = None) -> Figures:
        """Every count and exception list for ``day`` (UTC), or for all time.

        ``timings``, when given, receives the seconds each query took (for the benchmark).
        """
        with unit_of_work(self._sessions) as s:  # maps an unreachable database to our errors
            return compute_figures(s, day, timings if timings is not None else {})


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
