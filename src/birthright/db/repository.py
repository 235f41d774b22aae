"""SQLAlchemy implementations of the enrollment and attestation ports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from birthright.audit.events import GENESIS_HASH, AuditEvent, canonical_detail, link_hash
from birthright.db.models import (
    AlertRow,
    AuditEventRow,
    AuditHeadRow,
    CrlStateRow,
    DeviceRow,
    ProductPolicyRow,
    ReservationRow,
    RevocationRow,
    StationRow,
    WorkOrderRow,
)
from birthright.enrollment.model import Alert, DeviceRecord, Reservation, Station, WorkOrder
from birthright.enrollment.ports import DuplicateRecord
from birthright.errors import TransientError
from birthright.types import ChipId, ProductSerial, StationId


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def device_from_row(row: DeviceRow) -> DeviceRecord:
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


def work_order_from_row(row: WorkOrderRow) -> WorkOrder:
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


def append_audit(session: Session, event: AuditEvent, now: datetime) -> None:
    """Append one event to the hash chain; the head row lock serialises appenders."""
    if now.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    now = now.astimezone(UTC)  # the hash covers now.isoformat(); SQLite drops offsets
    head = session.execute(
        select(AuditHeadRow).where(AuditHeadRow.id == 1).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        head = AuditHeadRow(id=1, seq=0, hash=GENESIS_HASH)
        session.add(head)
        session.flush()
    seq = head.seq + 1
    digest = link_hash(head.hash, seq, now, event)
    session.add(
        AuditEventRow(
            seq=seq,
            at=now,
            event=event.event,
            outcome=event.outcome,
            code=event.code,
            station_id=event.station_id,
            serial=event.serial,
            detail=canonical_detail(event.detail),
            prev_hash=head.hash,
            hash=digest,
        )
    )
    head.seq = seq
    head.hash = digest


class SqlEnrollmentTx:
    def __init__(self, session: Session) -> None:
        self._s = session

    def station(self, station_id: StationId) -> Station | None:
        row = self._s.get(StationRow, station_id)
        if row is None:
            return None
        return Station(StationId(row.station_id), row.site, row.line, row.status)

    def _device(self, **where: Any) -> DeviceRecord | None:
        row = self._s.execute(select(DeviceRow).filter_by(**where)).scalar_one_or_none()
        return device_from_row(row) if row else None

    def device_by_serial(self, serial: ProductSerial) -> DeviceRecord | None:
        return self._device(serial=serial)

    def device_by_chip(self, chip_id: ChipId) -> DeviceRecord | None:
        return self._device(chip_id=chip_id)

    def device_by_key(self, key_fingerprint: str) -> DeviceRecord | None:
        return self._device(key_fingerprint=key_fingerprint)

    @staticmethod
    def _reservation(row: ReservationRow | None) -> Reservation | None:
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
        return self._reservation(self._s.get(ReservationRow, serial))

    def reservation_for_chip(self, chip_id: ChipId) -> Reservation | None:
        row = self._s.execute(
            select(ReservationRow).where(ReservationRow.chip_id == chip_id)
        ).scalar_one_or_none()
        return self._reservation(row)

    def work_order(self, work_order_id: str) -> WorkOrder | None:
        row = self._s.get(WorkOrderRow, work_order_id)
        return work_order_from_row(row) if row else None

    def requires_genuine_se(self, product: str) -> bool:
        row = self._s.get(ProductPolicyRow, product)
        return bool(row and row.require_genuine_se)

    def allocate_serial_number(self, work_order_id: str) -> int | None:
        value = self._s.execute(
            update(WorkOrderRow)
            .where(
                WorkOrderRow.work_order_id == work_order_id,
                WorkOrderRow.next_serial <= WorkOrderRow.serial_last,
            )
            .values(next_serial=WorkOrderRow.next_serial + 1)
            .returning(WorkOrderRow.next_serial)
        ).scalar_one_or_none()
        return None if value is None else int(value) - 1

    def count_minted(self, work_order_id: str) -> int | None:
        # The condition and the increment are one statement: with many service processes,
        # the row lock makes each see the others' counts, so the cap can never be passed.
        value = self._s.execute(
            update(WorkOrderRow)
            .where(
                WorkOrderRow.work_order_id == work_order_id,
                WorkOrderRow.status == "open",
                WorkOrderRow.minted < WorkOrderRow.quantity,
            )
            .values(minted=WorkOrderRow.minted + 1)
            .returning(WorkOrderRow.minted)
        ).scalar_one_or_none()
        return None if value is None else int(value)

    def enrollments_since(self, site: str, line: str, since: datetime) -> int:
        return int(
            self._s.execute(
                select(func.count())
                .select_from(DeviceRow)
                .join(WorkOrderRow, DeviceRow.work_order_id == WorkOrderRow.work_order_id)
                .where(
                    WorkOrderRow.site == site,
                    WorkOrderRow.line == line,
                    DeviceRow.enrolled_at >= since,
                )
            ).scalar_one()
        )

    def raise_alert(self, alert: Alert, now: datetime) -> None:
        add_alert(self._s, alert, now)

    def add_reservation(self, reservation: Reservation) -> None:
        self._s.add(
            ReservationRow(
                serial=reservation.serial,
                chip_id=reservation.chip_id,
                station_id=reservation.station_id,
                work_order_id=reservation.work_order_id,
                reserved_at=reservation.reserved_at,
            )
        )

    def add_device(self, device: DeviceRecord) -> None:
        self._s.add(
            DeviceRow(
                serial=device.serial,
                chip_id=device.chip_id,
                key_fingerprint=device.key_fingerprint,
                public_key_der=device.public_key_der,
                cert_serial=device.cert_serial,
                cert_der=device.cert_der,
                product=device.product,
                station_id=device.station_id,
                status=device.status,
                enrolled_at=device.enrolled_at,
                work_order_id=device.work_order_id,
                se_proof=device.se_proof,
                attestation_key=device.attestation_key,
            )
        )

    def replace_certificate(
        self, device: DeviceRecord, *, superseded_cert_serial: str, now: datetime
    ) -> bool:
        done = self._s.execute(
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
        if done.rowcount != 1:  # type: ignore[attr-defined]
            return False
        self._s.add(
            RevocationRow(
                cert_serial=superseded_cert_serial,
                serial=device.serial,
                revoked_at=now,
                reason="superseded",
            )
        )
        self._s.execute(update(CrlStateRow).where(CrlStateRow.id == 1).values(dirty=True))
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
