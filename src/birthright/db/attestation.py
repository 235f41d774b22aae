"""SQLAlchemy implementations of the attestation ports."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from birthright.attest.service import NonceOutcome
from birthright.attest.verdict import AttestationResult
from birthright.audit.events import AuditEvent
from birthright.db.models import (
    AttestationRow,
    DeviceContactRow,
    DeviceFirmwareRow,
    DeviceRow,
    NonceRow,
)
from birthright.db.repository import _utc, append_audit, device_from_row, unit_of_work
from birthright.enrollment.model import DeviceRecord
from birthright.types import Nonce, ProductSerial


class SqlNonceStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def issue(
        self, nonce: Nonce, serial: ProductSerial, issued_at: datetime, expires_at: datetime
    ) -> None:
        with unit_of_work(self._sessions) as s:
            s.add(NonceRow(nonce=nonce, serial=serial, issued_at=issued_at, expires_at=expires_at))

    def consume(self, nonce: str, serial: str, now: datetime) -> NonceOutcome:
        with unit_of_work(self._sessions) as s:
            result = s.execute(
                update(NonceRow)
                .where(
                    NonceRow.nonce == nonce,
                    NonceRow.serial == serial,
                    NonceRow.used_at.is_(None),
                    NonceRow.expires_at > now,
                )
                .values(used_at=now)
            )
            if getattr(result, "rowcount", 0) == 1:
                return "valid"
            row = s.get(NonceRow, nonce)
            if row is None:
                return "unknown"
            if row.serial != serial:
                return "wrong_device"
            if row.used_at is not None:
                return "replayed"
            if _utc(row.expires_at) <= now:
                return "expired"
            return "replayed"


class SqlAttestationRecords:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def device(self, serial: str) -> DeviceRecord | None:
        with self._sessions() as s:
            row = s.execute(
                select(DeviceRow).where(DeviceRow.serial == serial)
            ).scalar_one_or_none()
            return device_from_row(row) if row else None

    def security_floor(self, serial: str) -> int | None:
        with self._sessions() as s:
            return s.execute(
                select(DeviceFirmwareRow.security_version_high).where(
                    DeviceFirmwareRow.serial == serial
                )
            ).scalar_one_or_none()

    def contact(self, serial: str) -> tuple[datetime, datetime] | None:
        """(first contact, last passing attestation) of ``serial``, if it ever passed."""
        with self._sessions() as s:
            row = s.get(DeviceContactRow, serial)
            return (_utc(row.first_contact_at), _utc(row.last_attested_at)) if row else None

    def record(self, result: AttestationResult, now: datetime) -> None:
        checks = result.as_dict()["checks"]
        with unit_of_work(self._sessions) as s:
            s.add(
                AttestationRow(
                    serial=result.serial,
                    at=now,
                    verdict=result.verdict,
                    findings=json.dumps(checks, sort_keys=True),
                )
            )
            if result.firmware is not None:
                _remember_firmware(s, result.serial, result.firmware, now)
                if result.security_version is not None:
                    _raise_floor(s, result.serial, result.security_version)
            if result.verdict == "pass":
                _touch_contact(s, result.serial, now)
            else:
                failed = [f.id for f in result.findings if f.status != "pass"]
                append_audit(
                    s,
                    AuditEvent(
                        event="attestation",
                        outcome="refused",
                        code=failed[0] if failed else None,
                        serial=result.serial,
                        detail={"failed": failed},
                    ),
                    now,
                )


def _remember_firmware(s: Session, serial: str, firmware: tuple[str, bytes], now: datetime) -> None:
    """What the unit runs, as it last proved: the input of a recall by firmware version."""
    version, measurement = firmware
    values = {"version": version, "measurement": measurement, "reported_at": now}
    moved = s.execute(
        update(DeviceFirmwareRow).where(DeviceFirmwareRow.serial == serial).values(**values)
    )
    if getattr(moved, "rowcount", 0) == 1:
        return
    try:
        with s.begin_nested():
            s.add(DeviceFirmwareRow(serial=serial, **values))
    except IntegrityError:  # a concurrent attestation inserted it first
        s.execute(
            update(DeviceFirmwareRow).where(DeviceFirmwareRow.serial == serial).values(**values)
        )


def _raise_floor(s: Session, serial: str, security_version: int) -> None:
    """Lift the unit's anti-rollback floor to ``security_version``; never lower it."""
    s.execute(
        update(DeviceFirmwareRow)
        .where(DeviceFirmwareRow.serial == serial)
        .where(
            (DeviceFirmwareRow.security_version_high.is_(None))
            | (DeviceFirmwareRow.security_version_high < security_version)
        )
        .values(security_version_high=security_version)
    )


def _touch_contact(s: Session, serial: str, now: datetime) -> None:
    """Record the passing attestation; the first one ever is the unit's first contact."""
    moved = s.execute(
        update(DeviceContactRow)
        .where(DeviceContactRow.serial == serial)
        .values(last_attested_at=now)
    )
    if getattr(moved, "rowcount", 0) == 1:
        return
    try:
        with s.begin_nested():
            s.add(DeviceContactRow(serial=serial, first_contact_at=now, last_attested_at=now))
    except IntegrityError:  # a concurrent first attestation won the race: this one is not first
        s.execute(
            update(DeviceContactRow)
            .where(DeviceContactRow.serial == serial)
            .values(last_attested_at=now)
        )
        return
    append_audit(s, AuditEvent(event="device.first_contact", outcome="ok", serial=serial), now)
