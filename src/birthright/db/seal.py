"""The seal service's store: device lookups, key-agreement keys, audit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from birthright.audit.events import AuditEvent
from birthright.db.models import DeviceRow, KeyAgreementKeyRow
from birthright.db.repository import append_audit, device_from_row, unit_of_work
from birthright.enrollment.model import DeviceRecord


class SqlSealStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def device(self, serial: str) -> DeviceRecord | None:
        with self._sessions() as s:
            row = s.execute(select(DeviceRow).where(DeviceRow.serial == serial)).scalar()
            return device_from_row(row) if row is not None else None

    def ka_key(self, serial: str) -> bytes | None:
        with self._sessions() as s:
            row = s.get(KeyAgreementKeyRow, serial)
            return row.public_key_der if row is not None else None

    def put_ka_key(self, serial: str, spki_der: bytes, event: AuditEvent, now: datetime) -> None:
        with unit_of_work(self._sessions) as s:
            row = s.get(KeyAgreementKeyRow, serial)
            if row is None:
                s.add(KeyAgreementKeyRow(serial=serial, public_key_der=spki_der, registered_at=now))
            else:
                row.public_key_der, row.registered_at = spki_der, now
            append_audit(s, event, now)

    def audit(self, event: AuditEvent, now: datetime) -> None:
        with unit_of_work(self._sessions) as s:
            append_audit(s, event, now)
