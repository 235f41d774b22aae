"""Operator-side reads and writes: stations, device lookups, audit listing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from birthright.audit.events import AuditEvent
from birthright.db.models import DeviceRow, StationRow
from birthright.db.repository import append_audit, device_from_row, unit_of_work
from birthright.enrollment.model import DeviceRecord, Station
from birthright.errors import ConflictError
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
