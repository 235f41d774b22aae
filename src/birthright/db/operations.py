"""Operator-side reads and writes: stations, device lookups, audit listing."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from birthright.audit.events import AuditEvent
from birthright.db.models import AlertRow, DeviceFirmwareRow, DeviceRow, StationRow, WorkOrderRow
from birthright.db.repository import (
    append_audit,
    device_from_row,
    unit_of_work,
    work_order_from_row,
)
from birthright.enrollment.model import DeviceRecord, Station, WorkOrder, WorkOrderSpec
from birthright.errors import ConflictError, InputError, NotFoundError
from birthright.types import StationId


class Operations:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def register_station(self, station_id: str, *, site: str, line: str, now: datetime) -> Station:
        with unit_of_work(self._sessions) as s:
            if s.get(StationRow, station_id) is not None:
                raise ConflictError(
                    f"station {station_id!r} is already registered", code="station_exists"
                )
            s.add(
                StationRow(
                    station_id=station_id, site=site, line=line, status="active", created_at=now
                )
            )
            append_audit(
                s,
                AuditEvent(
                    event="station.registered",
                    outcome="ok",
                    station_id=station_id,
                    detail={"site": site, "line": line},
                ),
                now,
            )
        return Station(StationId(station_id), site, line, "active")

    def set_station_status(
        self, station_id: str, status: str, *, reason: str, now: datetime
    ) -> Station:
        """Suspend, revoke or reactivate a station. A revoked station stays revoked."""
        if status not in ("active", "suspended", "revoked"):
            raise InputError(f"unknown station status {status!r}", code="bad_status")
        with unit_of_work(self._sessions) as s:
            row = s.get(StationRow, station_id, with_for_update=True)
            if row is None:
                raise NotFoundError(
                    f"station {station_id!r} is not registered", code="station_unknown"
                )
            if row.status == "revoked" and status != "revoked":
                raise ConflictError(
                    f"station {station_id} is revoked for good", code="station_revoked"
                )
            previous = row.status
            row.status, row.status_reason, row.updated_at = status, reason, now
            append_audit(
                s,
                AuditEvent(
                    event=f"station.{status}",
                    outcome="ok",
                    station_id=station_id,
                    detail={"previous": previous, "reason": reason},
                ),
                now,
            )
            return Station(StationId(row.station_id), row.site, row.line, row.status)

    def alerts(self, *, limit: int = 100) -> list[dict[str, object]]:
        with self._sessions() as s:
            rows = s.execute(select(AlertRow).order_by(AlertRow.id.desc()).limit(limit)).scalars()
            return [
                {
                    "id": r.id,
                    "at": r.at,
                    "kind": r.kind,
                    "severity": r.severity,
                    "station_id": r.station_id,
                    "work_order_id": r.work_order_id,
                    "message": r.detail,
                }
                for r in rows
            ]

    def status_counts(self) -> dict[str, list[dict[str, object]]]:
        """Units per status, grouped by work order and by the firmware version each unit
        last proved (``unknown`` when it never attested)."""
        d, f = DeviceRow, DeviceFirmwareRow
        version = func.coalesce(f.version, "unknown")
        with self._sessions() as s:
            by_order = s.execute(
                select(d.work_order_id, d.status, func.count())
                .group_by(d.work_order_id, d.status)
                .order_by(d.work_order_id, d.status)
            ).all()
            by_firmware = s.execute(
                select(version, d.status, func.count())
                .select_from(d)
                .outerjoin(f, f.serial == d.serial)
                .group_by(version, d.status)
                .order_by(version, d.status)
            ).all()
        return {
            "by_work_order": [
                {"work_order_id": wo, "status": st, "units": int(n)} for wo, st, n in by_order
            ],
            "by_firmware_version": [
                {"firmware_version": v, "status": st, "units": int(n)} for v, st, n in by_firmware
            ],
        }

    def stations(self) -> list[Station]:
        with self._sessions() as s:
            rows = s.execute(select(StationRow).order_by(StationRow.station_id)).scalars()
            return [Station(StationId(r.station_id), r.site, r.line, r.status) for r in rows]

    def device(self, serial: str) -> DeviceRecord | None:
        with self._sessions() as s:
            row = s.execute(
                select(DeviceRow).where(DeviceRow.serial == serial)
            ).scalar_one_or_none()
            return device_from_row(row) if row else None

    def devices(self, *, limit: int = 1000, offset: int = 0) -> list[DeviceRecord]:
        with self._sessions() as s:
            rows = s.execute(
                select(DeviceRow).order_by(DeviceRow.id).limit(limit).offset(offset)
            ).scalars()
            return [device_from_row(r) for r in rows]

    def device_count(self) -> int:
        with self._sessions() as s:
            return int(s.execute(select(func.count()).select_from(DeviceRow)).scalar_one())


class WorkOrders:
    """Operator commands on work orders; each change is audited in the same transaction."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def open(self, spec: WorkOrderSpec, *, now: datetime) -> WorkOrder:
        with unit_of_work(self._sessions) as s:
            if s.get(WorkOrderRow, spec.work_order_id) is not None:
                raise ConflictError(
                    f"work order {spec.work_order_id!r} already exists", code="work_order_exists"
                )
            row = WorkOrderRow(
                work_order_id=spec.work_order_id,
                product=spec.product,
                site=spec.site,
                line=spec.line,
                quantity=spec.quantity,
                serial_prefix=spec.serial_prefix,
                serial_first=spec.serial_first,
                serial_last=spec.serial_last,
                next_serial=spec.serial_first,
                minted=0,
                status="open",
                valid_from=spec.valid_from,
                valid_until=spec.valid_until,
                rate_ceiling_per_minute=spec.rate_ceiling_per_minute,
                created_at=now,
                updated_at=now,
            )
            s.add(row)
            append_audit(
                s,
                AuditEvent(
                    event="work_order.opened",
                    outcome="ok",
                    detail={k: str(v) for k, v in dataclasses.asdict(spec).items()},
                ),
                now,
            )
            s.flush()
            return work_order_from_row(row)

    def set_status(self, work_order_id: str, status: str, *, now: datetime) -> WorkOrder:
        if status not in ("open", "suspended", "closed"):
            raise InputError(f"unknown work order status {status!r}", code="bad_status")
        with unit_of_work(self._sessions) as s:
            row = s.get(WorkOrderRow, work_order_id, with_for_update=True)
            if row is None:
                raise NotFoundError(
                    f"work order {work_order_id!r} does not exist", code="work_order_unknown"
                )
            if row.status == "closed":
                raise ConflictError(
                    f"work order {work_order_id} is closed for good", code="work_order_closed"
                )
            previous, row.status, row.updated_at = row.status, status, now
            append_audit(
                s,
                AuditEvent(
                    event=f"work_order.{status}",
                    outcome="ok",
                    detail={"work_order_id": work_order_id, "previous": previous},
                ),
                now,
            )
            s.flush()
            return work_order_from_row(row)

    def get(self, work_order_id: str) -> WorkOrder | None:
        with self._sessions() as s:
            row = s.get(WorkOrderRow, work_order_id)
            return work_order_from_row(row) if row else None

    def list(self) -> list[WorkOrder]:
        with self._sessions() as s:
            rows = s.execute(select(WorkOrderRow).order_by(WorkOrderRow.created_at)).scalars()
            return [work_order_from_row(r) for r in rows]
