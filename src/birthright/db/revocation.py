"""SQLAlchemy implementation of the revocation ports: set-based statements, one row per cert."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, delete, insert, literal, select, update
from sqlalchemy.orm import Session, sessionmaker

from birthright.audit.events import AuditEvent
from birthright.db.events import write_event
from birthright.db.models import (
    CrlStateRow,
    DeviceFirmwareRow,
    DeviceRow,
    EntitlementRow,
    RecallRow,
    RevocationRow,
    WorkOrderRow,
)
from birthright.db.repository import append_audit, unit_of_work
from birthright.db.status_reader import SqlStatusReader
from birthright.revocation.model import (
    CertStatus,
    CrlState,
    DeviceState,
    Match,
    PublishedCrl,
    Reason,
    Recall,
    Revocation,
    RevokedEntry,
    Selection,
)


def _utc(value: datetime) -> datetime:
    """UTC, whatever the engine hands back (SQLite: naive; PostgreSQL: session zone)."""
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


#: Rows per fetch while streaming the CRL's entries.
CRL_BATCH = 10_000
_CRL_ENTRIES_SQL = (
    "SELECT cert_serial, revoked_at, reason FROM revocations WHERE released_at IS NULL"
)


class _TimeCache:
    """Driver time values (SQLite: ISO text; PostgreSQL: aware datetimes) to aware UTC, with
    the last few cached: a recall gives thousands of rows the same time."""

    def __init__(self) -> None:
        self.seen: dict[object, datetime] = {}

    def utc(self, raw: object) -> datetime:
        found = self.seen.get(raw)
        if found is None:
            if len(self.seen) > 4096:
                self.seen.clear()
            if isinstance(raw, str):
                found = _utc(datetime.fromisoformat(raw))
            elif isinstance(raw, datetime):
                found = _utc(raw)
            else:
                raise TypeError(f"unexpected time value from the driver: {type(raw).__name__}")
            self.seen[raw] = found
        return found


def _revocation(row: RevocationRow) -> Revocation:
    return Revocation(
        cert_serial=row.cert_serial,
        serial=row.serial,
        revoked_at=_utc(row.revoked_at),
        reason=Reason(row.reason),
        recall_id=row.recall_id,
        released_at=_utc(row.released_at) if row.released_at else None,
    )


def selection_filter(selection: Selection, cutoff: int | None) -> list[ColumnElement[bool]]:
    """WHERE clauses over ``devices`` for the active units ``selection`` matches."""
    d = DeviceRow
    where: list[ColumnElement[bool]] = [d.status == "active"]
    if cutoff is not None:
        where.append(d.id <= cutoff)
    if selection.product is not None:
        where.append(d.product == selection.product)
    if selection.work_order_id is not None:
        where.append(d.work_order_id == selection.work_order_id)
    if selection.station_id is not None:
        where.append(d.station_id == selection.station_id)
    if selection.site is not None or selection.line is not None:
        orders = select(WorkOrderRow.work_order_id)
        if selection.site is not None:
            orders = orders.where(WorkOrderRow.site == selection.site)
        if selection.line is not None:
            orders = orders.where(WorkOrderRow.line == selection.line)
        where.append(d.work_order_id.in_(orders))
    if selection.serials:
        where.append(d.serial.in_(selection.serials))
    if selection.serial_first is not None:
        where.append(d.serial >= selection.serial_first)
    if selection.serial_last is not None:
        where.append(d.serial <= selection.serial_last)
    # SQLite keeps no offset: compare in UTC, as every time is stored.
    if selection.enrolled_since is not None:
        where.append(d.enrolled_at >= selection.enrolled_since.astimezone(UTC))
    if selection.enrolled_until is not None:
        where.append(d.enrolled_at < selection.enrolled_until.astimezone(UTC))
    if selection.firmware_versions:
        running = select(DeviceFirmwareRow.serial).where(
            DeviceFirmwareRow.version.in_(selection.firmware_versions)
        )
        where.append(d.serial.in_(running))
    return where


def _recalled(recall_id: str) -> Select[str]:
    return select(RevocationRow.serial).where(RevocationRow.recall_id == recall_id)


class SqlRevocationTx:
    def __init__(self, session: Session) -> None:
        self._s = session

    def device(self, serial: str) -> DeviceState | None:
        row = self._s.execute(
            select(DeviceRow.serial, DeviceRow.cert_serial, DeviceRow.status)
            .where(DeviceRow.serial == serial)
            .with_for_update()
        ).one_or_none()
        return DeviceState(row.serial, row.cert_serial, row.status) if row else None

    def revocation(self, cert_serial: str) -> Revocation | None:
        row = self._s.get(RevocationRow, cert_serial)
        return _revocation(row) if row else None

    def put_revocation(self, revocation: Revocation) -> None:
        row = self._s.get(RevocationRow, revocation.cert_serial)
        if row is None:
            row = RevocationRow(cert_serial=revocation.cert_serial)
            self._s.add(row)
        row.serial = revocation.serial
        row.revoked_at = revocation.revoked_at
        row.reason = revocation.reason.value
        row.recall_id = revocation.recall_id
        row.released_at = revocation.released_at

    def set_status(self, serial: str, status: str) -> None:
        self._s.execute(update(DeviceRow).where(DeviceRow.serial == serial).values(status=status))

    def match(self, selection: Selection, *, cutoff: int | None, sample: int) -> Match:
        rows = self._s.execute(
            select(DeviceRow.id, DeviceRow.cert_serial, DeviceRow.serial)
            .where(*selection_filter(selection, cutoff))
            .order_by(DeviceRow.id)
        ).all()
        return Match(
            cutoff=rows[-1].id if rows else 0,
            cert_serials=tuple(r.cert_serial for r in rows),
            sample=tuple(r.serial for r in rows[:sample]),
        )

    def revoke_matching(
        self, selection: Selection, *, cutoff: int, reason: Reason, recall_id: str, now: datetime
    ) -> int:
        where = selection_filter(selection, cutoff)
        matched = select(DeviceRow.cert_serial).where(*where)
        # Rows of released holds make room for the new revocation (the audit log keeps them).
        self._s.execute(
            delete(RevocationRow).where(
                RevocationRow.released_at.is_not(None), RevocationRow.cert_serial.in_(matched)
            )
        )
        self._s.execute(
            insert(RevocationRow).from_select(
                ["cert_serial", "serial", "revoked_at", "reason", "recall_id"],
                select(
                    DeviceRow.cert_serial,
                    DeviceRow.serial,
                    literal(now.astimezone(UTC), RevocationRow.revoked_at.type),
                    literal(reason.value, RevocationRow.reason.type),
                    literal(recall_id, RevocationRow.recall_id.type),
                ).where(*where),
            )
        )
        result = self._s.execute(
            update(DeviceRow).where(*where).values(status=reason.device_status),
            execution_options={"synchronize_session": False},
        )
        return int(getattr(result, "rowcount", -1))

    def add_recall(self, recall: Recall) -> None:
        self._s.add(
            RecallRow(
                recall_id=recall.recall_id,
                token_hash=recall.token_hash,
                selection=recall.selection.canonical_json(),
                reason=recall.reason.value,
                count=recall.count,
                matched_digest=recall.matched_digest,
                device_id_cutoff=recall.device_id_cutoff,
                created_at=recall.created_at,
                expires_at=recall.expires_at,
            )
        )

    def recall_for_token(self, token_hash: str) -> Recall | None:
        row = self._s.execute(
            select(RecallRow).where(RecallRow.token_hash == token_hash).with_for_update()
        ).scalar_one_or_none()
        if row is None:
            return None
        return Recall(
            recall_id=row.recall_id,
            token_hash=row.token_hash,
            selection=Selection.from_mapping(json.loads(row.selection)),
            reason=Reason(row.reason),
            count=row.count,
            matched_digest=row.matched_digest,
            device_id_cutoff=row.device_id_cutoff,
            created_at=_utc(row.created_at),
            expires_at=_utc(row.expires_at),
            executed_at=_utc(row.executed_at) if row.executed_at else None,
        )

    def mark_executed(self, recall_id: str, now: datetime) -> None:
        self._s.execute(
            update(RecallRow).where(RecallRow.recall_id == recall_id).values(executed_at=now)
        )

    def _state_row(self) -> CrlStateRow:
        row = self._s.execute(
            select(CrlStateRow).where(CrlStateRow.id == 1).with_for_update()
        ).scalar_one_or_none()
        if row is None:  # the migration creates it; a hand-made schema may not have
            row = CrlStateRow(id=1, crl_number=0, dirty=True)
            self._s.add(row)
            self._s.flush()
        return row

    def crl_state(self) -> CrlState:
        return _crl_state(self._state_row())

    def crl_entries(self) -> Iterator[RevokedEntry]:
        """Streamed in table order through the driver's own cursor, in this transaction (a
        server-side cursor on PostgreSQL): no ORM or Row objects, no sort, bounded memory."""
        connection = self._s.connection()
        dbapi = connection.connection  # the driver connection inside this transaction
        if connection.dialect.name == "postgresql":
            cursor = dbapi.cursor(name="birthright_crl_entries")  # server-side
        else:
            cursor = dbapi.cursor()
        times = _TimeCache()
        utc, seen = times.utc, times.seen
        reasons = {r.value: r for r in Reason}
        entry = RevokedEntry._make
        try:
            cursor.execute(_CRL_ENTRIES_SQL)
            while rows := cursor.fetchmany(CRL_BATCH):
                for cert_serial, raw, reason in rows:
                    yield entry((cert_serial, seen.get(raw) or utc(raw), reasons[reason]))
        finally:
            cursor.close()

    def save_crl(self, crl: PublishedCrl) -> None:
        row = self._state_row()
        row.crl_number, row.crl_der, row.dirty = crl.number, crl.der, False
        row.last_generated_at, row.next_update = crl.this_update, crl.next_update

    def crl_changed(self) -> None:
        self._s.execute(update(CrlStateRow).where(CrlStateRow.id == 1).values(dirty=True))

    def audit(self, event: AuditEvent, now: datetime) -> None:
        append_audit(self._s, event, now)

    def emit(self, event_type: str, data: dict[str, Any], now: datetime) -> None:
        write_event(self._s, event_type, data, now)

    def entitlements(
        self, *, serial: str | None = None, recall_id: str | None = None
    ) -> list[dict[str, str]]:
        e = EntitlementRow
        query = select(e.serial, e.plan, e.kind, e.owner).order_by(e.id)
        if serial is not None:
            query = query.where(e.serial == serial)
        if recall_id is not None:
            query = query.where(e.serial.in_(_recalled(recall_id)))
        return [
            {"serial": r.serial, "plan": r.plan, "kind": r.kind, "owner": r.owner}
            for r in self._s.execute(query)
        ]

    def recalled_serials(self, recall_id: str) -> list[str]:
        return list(self._s.scalars(_recalled(recall_id).order_by(RevocationRow.serial)))


def _crl_state(row: CrlStateRow | None) -> CrlState:
    if row is None:
        return CrlState(0, True, None)
    cached = None
    if row.crl_der and row.last_generated_at and row.next_update:
        cached = PublishedCrl(
            row.crl_der, row.crl_number, _utc(row.last_generated_at), _utc(row.next_update)
        )
    return CrlState(row.crl_number, row.dirty, cached)


class SqlRevocationStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        bind = sessions.kw.get("bind")
        if not isinstance(bind, Engine):
            raise TypeError("the revocation store needs sessions bound to an engine")
        self._status = SqlStatusReader(bind)
        #: The latest CRL this process has read: CRL numbers are never reused.
        self._published: PublishedCrl | None = None

    @contextmanager
    def transaction(self) -> Iterator[SqlRevocationTx]:
        with unit_of_work(self._sessions) as session:
            yield SqlRevocationTx(session)

    def crl_state(self) -> CrlState:
        """The state row without its CRL blob, which is read only when its number is new to
        this process: a CRL of a million entries is 49 MB, and every CRL download asks."""
        r = CrlStateRow
        with self._sessions() as s:
            head = s.execute(
                select(r.crl_number, r.dirty, r.last_generated_at, r.next_update).where(r.id == 1)
            ).one_or_none()
            if head is None:
                return CrlState(0, True, None)
            kept = self._published
            if head.last_generated_at is None or head.next_update is None:
                return CrlState(head.crl_number, head.dirty, None)
            if kept is None or kept.number != head.crl_number:
                der = s.execute(select(r.crl_der).where(r.id == 1)).scalar_one_or_none()
                if not der:
                    return CrlState(head.crl_number, head.dirty, None)
                kept = self._published = PublishedCrl(
                    der, head.crl_number, _utc(head.last_generated_at), _utc(head.next_update)
                )
            return CrlState(head.crl_number, head.dirty, kept)

    def cert_status(self, cert_serial: str) -> CertStatus:
        return self._status(cert_serial)
