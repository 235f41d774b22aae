"""SQLAlchemy implementations of the enrollment and attestation ports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BindParameter, Row, Table, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from birthright.audit.events import GENESIS_HASH, AuditEvent, canonical_detail, link_hash
from birthright.db.models import (
    AlertRow,
    AuditEventRow,
    AuditHeadRow,
    Base,
    CrlStateRow,
    DeviceRow,
    PolicyHookRow,
    ProductPolicyRow,
    ReservationRow,
    RevocationRow,
    StationRow,
    WorkOrderRow,
    table_of,
)
from birthright.enrollment.model import Alert, DeviceRecord, Reservation, Station, WorkOrder
from birthright.enrollment.ports import DuplicateRecord
from birthright.errors import TransientError
from birthright.types import ChipId, ProductSerial, StationId


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def device_from_row(row: DeviceRow | Row[Any]) -> DeviceRecord:
    return DeviceRecord(
        serial=ProductSerial(row.serial),
        chip_id=ChipId(row.chip_id),
        key_fingerprint=row.key_fingerprint,
        public_key_der=row.public_key_der,
        cert_serial=row.cert_serial,
        cert_der=row.cert_der,
        product=row.product,
        station_id=StationId(row.station_id),
        status=row.status,
        enrolled_at=_utc(row.enrolled_at),
        work_order_id=row.work_order_id,
        se_proof=row.se_proof,
        attestation_key=row.attestation_key,
    )


def work_order_from_row(row: WorkOrderRow | Row[Any]) -> WorkOrder:
    return WorkOrder(
        work_order_id=row.work_order_id,
        product=row.product,
        site=row.site,
        line=row.line,
        quantity=row.quantity,
        serial_prefix=row.serial_prefix,
        serial_first=row.serial_first,
        serial_last=row.serial_last,
        next_serial=row.next_serial,
        minted=row.minted,
        status=row.status,
        valid_from=_utc(row.valid_from),
        valid_until=_utc(row.valid_until),
        rate_ceiling_per_minute=row.rate_ceiling_per_minute,
    )


def add_alert(session: Session, alert: Alert, now: datetime) -> None:
    """Record an alert and its audit event in the caller's transaction."""
    session.add(
        AlertRow(
            at=now,
            kind=alert.kind,
            severity=alert.severity,
            station_id=alert.station_id,
            work_order_id=alert.work_order_id,
            detail=alert.message,
        )
    )
    append_audit(
        session,
        AuditEvent(
            event="alert",
            outcome="alert",
            code=alert.kind,
            station_id=alert.station_id,
            detail={
                "severity": alert.severity,
                "message": alert.message,
                "work_order_id": alert.work_order_id,
            },
        ),
        now,
    )


def _table(model: type[Base]) -> Table:
    return table_of(model)


# Hot statements are built once: building and cache-keying a statement costs more than
# executing it on SQLite.
_HEAD = table_of(AuditHeadRow)
_EVENTS = table_of(AuditEventRow)
_SELECT_HEAD = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update()
_INSERT_EVENT = insert(_EVENTS)
_UPDATE_HEAD = update(_HEAD).where(_HEAD.c.id == 1)


def append_audit(session: Session, event: AuditEvent, now: datetime) -> None:
    """Append one event to the hash chain; the head row lock serialises appenders.

    Core statements on the session's connection: the chain needs no ORM objects, and this
    runs in every write of the service."""
    if now.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    now = now.astimezone(UTC)  # the hash covers now.isoformat(); SQLite drops offsets
    conn = session.connection()
    head = conn.execute(_SELECT_HEAD).first()
    if head is None:
        prev_seq, prev_hash = 0, GENESIS_HASH
        conn.execute(insert(_HEAD).values(id=1, seq=prev_seq, hash=prev_hash))
    else:
        prev_seq, prev_hash = head
    seq = prev_seq + 1
    digest = link_hash(prev_hash, seq, now, event)
    conn.execute(
        _INSERT_EVENT,
        {
            "seq": seq,
            "at": now,
            "event": event.event,
            "outcome": event.outcome,
            "code": event.code,
            "station_id": event.station_id,
            "serial": event.serial,
            "detail": canonical_detail(event.detail),
            "prev_hash": prev_hash,
            "hash": digest,
        },
    )
    conn.execute(_UPDATE_HEAD, {"seq": seq, "hash": digest})


_DEVICES = table_of(DeviceRow)
_RESERVATIONS = table_of(ReservationRow)
_ORDERS = table_of(WorkOrderRow)
_STATIONS = table_of(StationRow)
_POLICIES = table_of(ProductPolicyRow)
_KEY: BindParameter[str] = bindparam("key")
_SELECT_STATION = select(_STATIONS.c.site, _STATIONS.c.line, _STATIONS.c.status).where(
    _STATIONS.c.station_id == _KEY
)
_SELECT_DEVICE = {
    column: select(_DEVICES).where(_DEVICES.c[column] == _KEY)
    for column in ("serial", "chip_id", "key_fingerprint")
}
_SELECT_RESERVATION = {
    column: select(_RESERVATIONS).where(_RESERVATIONS.c[column] == _KEY)
    for column in ("serial", "chip_id")
}
_SELECT_ORDER = select(_ORDERS).where(_ORDERS.c.work_order_id == _KEY)
_HOOKS = table_of(PolicyHookRow)
_SELECT_HOOK = select(_HOOKS.c.product).where(_HOOKS.c.product == _KEY)
_SELECT_GENUINE = select(_POLICIES.c.require_genuine_se).where(_POLICIES.c.product == _KEY)
_NEXT_SERIAL = (
    update(_ORDERS)
    .where(_ORDERS.c.work_order_id == _KEY, _ORDERS.c.next_serial <= _ORDERS.c.serial_last)
    .values(next_serial=_ORDERS.c.next_serial + 1)
    .returning(_ORDERS.c.next_serial)
)
# The condition and the increment are one statement: with many service processes, the row
# lock makes each see the others' counts, so the cap can never be passed.
_COUNT_MINTED = (
    update(_ORDERS)
    .where(
        _ORDERS.c.work_order_id == _KEY,
        _ORDERS.c.status == "open",
        _ORDERS.c.minted < _ORDERS.c.quantity,
    )
    .values(minted=_ORDERS.c.minted + 1)
    .returning(_ORDERS.c.minted)
)
_INSERT_RESERVATION = insert(_RESERVATIONS)
_INSERT_DEVICE = insert(_DEVICES)


class SqlEnrollmentTx:
    """The enrollment port in Core statements on the transaction's connection: the hot path
    of every unit made, so no ORM identity map, no unit-of-work flush, one statement each."""

    def __init__(self, session: Session) -> None:
        self._s = session
        self._c = session.connection()

    def station(self, station_id: StationId) -> Station | None:
        row = self._c.execute(_SELECT_STATION, {"key": station_id}).first()
        return None if row is None else Station(station_id, row.site, row.line, row.status)

    def _device(self, column: str, value: str) -> DeviceRecord | None:
        row = self._c.execute(_SELECT_DEVICE[column], {"key": value}).first()
        return device_from_row(row) if row else None

    def device_by_serial(self, serial: ProductSerial) -> DeviceRecord | None:
        return self._device("serial", serial)

    def device_by_chip(self, chip_id: ChipId) -> DeviceRecord | None:
        return self._device("chip_id", chip_id)

    def device_by_key(self, key_fingerprint: str) -> DeviceRecord | None:
        return self._device("key_fingerprint", key_fingerprint)

    def _reservation(self, column: str, value: str) -> Reservation | None:
        row = self._c.execute(_SELECT_RESERVATION[column], {"key": value}).first()
        if row is None:
            return None
        return Reservation(
            ProductSerial(row.serial),
            ChipId(row.chip_id),
            StationId(row.station_id),
            row.work_order_id or "",
            _utc(row.reserved_at),
        )

    def reservation(self, serial: ProductSerial) -> Reservation | None:
        return self._reservation("serial", serial)

    def reservation_for_chip(self, chip_id: ChipId) -> Reservation | None:
        return self._reservation("chip_id", chip_id)

    def work_order(self, work_order_id: str) -> WorkOrder | None:
        row = self._c.execute(_SELECT_ORDER, {"key": work_order_id}).first()
        return work_order_from_row(row) if row else None

    def requires_genuine_se(self, product: str) -> bool:
        value = self._c.execute(_SELECT_GENUINE, {"key": product}).scalar_one_or_none()
        return bool(value)

    def has_policy_hook(self, product: str) -> bool:
        return self._c.execute(_SELECT_HOOK, {"key": product}).first() is not None

    def allocate_serial_number(self, work_order_id: str) -> int | None:
        value = self._c.execute(_NEXT_SERIAL, {"key": work_order_id}).scalar_one_or_none()
        return None if value is None else int(value) - 1

    def count_minted(self, work_order_id: str) -> int | None:
        value = self._c.execute(_COUNT_MINTED, {"key": work_order_id}).scalar_one_or_none()
        return None if value is None else int(value)

    def enrollments_since(self, site: str, line: str, since: datetime) -> int:
        return int(
            self._c.execute(
                select(func.count())
                .select_from(_DEVICES)
                .join(_ORDERS, _DEVICES.c.work_order_id == _ORDERS.c.work_order_id)
                .where(
                    _ORDERS.c.site == site,
                    _ORDERS.c.line == line,
                    _DEVICES.c.enrolled_at >= since,
                )
            ).scalar_one()
        )

    def raise_alert(self, alert: Alert, now: datetime) -> None:
        add_alert(self._s, alert, now)

    def add_reservation(self, reservation: Reservation) -> None:
        self._c.execute(
            _INSERT_RESERVATION,
            {
                "serial": reservation.serial,
                "chip_id": reservation.chip_id,
                "station_id": reservation.station_id,
                "work_order_id": reservation.work_order_id,
                "reserved_at": reservation.reserved_at,
            },
        )

    def add_device(self, device: DeviceRecord) -> None:
        self._c.execute(
            _INSERT_DEVICE,
            {
                "serial": device.serial,
                "chip_id": device.chip_id,
                "key_fingerprint": device.key_fingerprint,
                "public_key_der": device.public_key_der,
                "cert_serial": device.cert_serial,
                "cert_der": device.cert_der,
                "product": device.product,
                "station_id": device.station_id,
                "status": device.status,
                "enrolled_at": device.enrolled_at,
                "work_order_id": device.work_order_id,
                "se_proof": device.se_proof,
                "attestation_key": device.attestation_key,
            },
        )

    def replace_certificate(
        self, device: DeviceRecord, *, superseded_cert_serial: str, now: datetime
    ) -> bool:
        done = self._c.execute(
            update(DeviceRow)
            .where(
                DeviceRow.serial == device.serial,
                DeviceRow.cert_serial == superseded_cert_serial,
                DeviceRow.status == "active",
            )
            .values(
                key_fingerprint=device.key_fingerprint,
                public_key_der=device.public_key_der,
                cert_serial=device.cert_serial,
                cert_der=device.cert_der,
            )
        )
        if done.rowcount != 1:
            return False
        self._s.add(
            RevocationRow(
                cert_serial=superseded_cert_serial,
                serial=device.serial,
                revoked_at=now,
                reason="superseded",
            )
        )
        self._c.execute(update(CrlStateRow).where(CrlStateRow.id == 1).values(dirty=True))
        return True

    def audit(self, event: AuditEvent, now: datetime) -> None:
        append_audit(self._s, event, now)


@contextmanager
def unit_of_work(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on error, map DB faults to our tree."""
    session = sessions()
    try:
        yield session
        session.commit()
    except IntegrityError as e:
        session.rollback()
        raise DuplicateRecord("a unique value is already recorded") from e
    except OperationalError as e:
        session.rollback()
        raise TransientError(
            "the database is unavailable; retry later", code="db_unavailable"
        ) from e
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


class SqlEnrollmentStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    @contextmanager
    def transaction(self) -> Iterator[SqlEnrollmentTx]:
        with unit_of_work(self._sessions) as session:
            yield SqlEnrollmentTx(session)

    def record_refusal(
        self, event: AuditEvent, now: datetime, *, alert: Alert | None = None
    ) -> None:
        with unit_of_work(self._sessions) as session:
            append_audit(session, event, now)
            if alert is not None:
                add_alert(session, alert, now)
