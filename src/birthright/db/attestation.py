"""SQLAlchemy implementations of the attestation ports.

The verify path runs once per attestation, so its statements are SQLAlchemy Core, built once
at import and executed on the session's connection: no ORM objects, identity map or flush on
the hot path. Each call is still one transaction of ``unit_of_work`` (the same error mapping).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, and_, bindparam, case, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from birthright.attest.service import NonceOutcome, UnitState
from birthright.attest.verdict import AttestationResult
from birthright.audit.events import AuditEvent
from birthright.db.firmware import RELEASE_COLUMNS, labelled_release
from birthright.db.models import (
    AttestationRow,
    DeviceContactRow,
    DeviceFirmwareRow,
    DeviceRow,
    FirmwareReleaseRow,
    NonceRow,
    table_of,
)
from birthright.db.repository import _utc, append_audit, device_from_row, unit_of_work
from birthright.enrollment.model import DeviceRecord
from birthright.types import Nonce, ProductSerial

_NONCES = table_of(NonceRow)
_DEVICES = table_of(DeviceRow)
_FIRMWARE = table_of(DeviceFirmwareRow)
_CONTACTS = table_of(DeviceContactRow)
_ATTESTATIONS = table_of(AttestationRow)
_RELEASES = table_of(FirmwareReleaseRow)

#: Every time the hot path writes or compares, typed as the columns are (SQLite stores text).
_NOW = bindparam("b_now", type_=_NONCES.c.used_at.type)
_SERIAL = bindparam("b_serial", type_=_DEVICES.c.serial.type)

_SPEND_NONCE = (
    update(_NONCES)
    .where(
        _NONCES.c.nonce == bindparam("b_nonce", type_=_NONCES.c.nonce.type),
        _NONCES.c.serial == bindparam("b_serial", type_=_NONCES.c.serial.type),
        _NONCES.c.used_at.is_(None),
        _NONCES.c.expires_at > _NOW,
    )
    .values(used_at=_NOW)
)
_NONCE = select(_NONCES.c.serial, _NONCES.c.used_at, _NONCES.c.expires_at).where(
    _NONCES.c.nonce == bindparam("b_nonce")
)
_DEVICE = select(_DEVICES).where(_DEVICES.c.serial == _SERIAL)
#: The unit and its anti-rollback floor, one round trip.
_DEVICE_AND_FLOOR = (
    select(_DEVICES, _FIRMWARE.c.security_version_high)
    .select_from(_DEVICES.outerjoin(_FIRMWARE, _FIRMWARE.c.serial == _DEVICES.c.serial))
    .where(_DEVICES.c.serial == _SERIAL)
)
#: The same and the release of the claimed firmware version of the unit's product.
_DEVICE_FLOOR_AND_RELEASE = (
    select(_DEVICES, _FIRMWARE.c.security_version_high, *RELEASE_COLUMNS)
    .select_from(
        _DEVICES.outerjoin(_FIRMWARE, _FIRMWARE.c.serial == _DEVICES.c.serial).outerjoin(
            _RELEASES,
            and_(
                _RELEASES.c.product == _DEVICES.c.product,
                _RELEASES.c.version == bindparam("b_version", type_=_RELEASES.c.version.type),
            ),
        )
    )
    .where(_DEVICES.c.serial == _SERIAL)
)
_FLOOR = select(_FIRMWARE.c.security_version_high).where(_FIRMWARE.c.serial == _SERIAL)
_RECORD = insert(_ATTESTATIONS)
#: What the unit runs, as it last proved; the floor is not touched.
_REPORT_FIRMWARE = (
    update(_FIRMWARE)
    .where(_FIRMWARE.c.serial == _SERIAL)
    .values(
        version=bindparam("b_version", type_=_FIRMWARE.c.version.type),
        measurement=bindparam("b_measurement", type_=_FIRMWARE.c.measurement.type),
        reported_at=_NOW,
    )
)
_SECURITY_VERSION = bindparam("b_security_version", type_=_FIRMWARE.c.security_version_high.type)
#: The same, and the floor lifted to ``b_security_version``; never lowered.
_REPORT_FIRMWARE_RAISE_FLOOR = _REPORT_FIRMWARE.values(
    security_version_high=case(
        (
            or_(
                _FIRMWARE.c.security_version_high.is_(None),
                _FIRMWARE.c.security_version_high < _SECURITY_VERSION,
            ),
            _SECURITY_VERSION,
        ),
        else_=_FIRMWARE.c.security_version_high,
    )
)
_FIRST_FIRMWARE = insert(_FIRMWARE)
_TOUCH_CONTACT = (
    update(_CONTACTS).where(_CONTACTS.c.serial == _SERIAL).values(last_attested_at=_NOW)
)
_FIRST_CONTACT = insert(_CONTACTS)


def _rowcount(result: object) -> int:
    return cast(int, getattr(result, "rowcount", 0))


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
            return _spend(s.connection(), nonce, serial, now)


def _spend(conn: Connection, nonce: str, serial: str, now: datetime) -> NonceOutcome:
    """Mark the nonce used, atomically; say why not when it cannot be used."""
    spent = conn.execute(_SPEND_NONCE, {"b_nonce": nonce, "b_serial": serial, "b_now": now})
    if _rowcount(spent) == 1:
        return "valid"
    row = conn.execute(_NONCE, {"b_nonce": nonce}).first()
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
            row = s.connection().execute(_DEVICE, {"b_serial": serial}).first()
            return device_from_row(row) if row is not None else None

    def spend_and_read(
        self, nonce: str | None, serial: str, now: datetime, firmware_version: str | None
    ) -> UnitState:
        """Spend ``nonce`` (the same statements as ``SqlNonceStore.consume``), then read the
        unit, its floor and the claimed release, in one transaction: one commit, one
        connection, instead of one per read."""
        with unit_of_work(self._sessions) as s:
            conn = s.connection()
            outcome = _spend(conn, nonce, serial, now) if nonce is not None else None
            if firmware_version is None:
                row = conn.execute(_DEVICE_AND_FLOOR, {"b_serial": serial}).first()
            else:
                row = conn.execute(
                    _DEVICE_FLOOR_AND_RELEASE, {"b_serial": serial, "b_version": firmware_version}
                ).first()
            if row is None:
                return UnitState(outcome, None, None, None)
            release = labelled_release(row) if firmware_version is not None else None
            return UnitState(outcome, device_from_row(row), row.security_version_high, release)

    def security_floor(self, serial: str) -> int | None:
        with self._sessions() as s:
            return s.connection().execute(_FLOOR, {"b_serial": serial}).scalar_one_or_none()

    def contact(self, serial: str) -> tuple[datetime, datetime] | None:
        """(first contact, last passing attestation) of ``serial``, if it ever passed."""
        with self._sessions() as s:
            row = s.get(DeviceContactRow, serial)
            return (_utc(row.first_contact_at), _utc(row.last_attested_at)) if row else None

    def record(self, result: AttestationResult, now: datetime) -> None:
        checks = result.as_dict()["checks"]
        with unit_of_work(self._sessions) as s:
            conn = s.connection()
            conn.execute(
                _RECORD,
                {
                    "serial": result.serial,
                    "at": now,
                    "verdict": result.verdict,
                    "findings": json.dumps(checks, sort_keys=True),
                },
            )
            if result.firmware is not None:
                _remember_firmware(
                    s, conn, result.serial, result.firmware, now, result.security_version
                )
            if result.verdict == "pass":
                _touch_contact(s, conn, result.serial, now)
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


def _remember_firmware(
    s: Session,
    conn: Connection,
    serial: str,
    firmware: tuple[str, bytes],
    now: datetime,
    security_version: int | None,
) -> None:
    """What the unit runs, as it last proved (the input of a recall by firmware version), and
    its anti-rollback floor lifted to ``security_version`` when given; never lowered."""
    version, measurement = firmware
    params = {
        "b_serial": serial,
        "b_version": version,
        "b_measurement": measurement,
        "b_now": now,
        "b_security_version": security_version,
    }
    report = _REPORT_FIRMWARE if security_version is None else _REPORT_FIRMWARE_RAISE_FLOOR
    if _rowcount(conn.execute(report, params)) == 1:
        return
    try:
        with s.begin_nested():
            conn.execute(
                _FIRST_FIRMWARE,
                {
                    "serial": serial,
                    "version": version,
                    "measurement": measurement,
                    "reported_at": now,
                    "security_version_high": security_version,
                },
            )
    except IntegrityError:  # a concurrent attestation inserted it first
        conn.execute(report, params)


def _touch_contact(s: Session, conn: Connection, serial: str, now: datetime) -> None:
    """Record the passing attestation; the first one ever is the unit's first contact."""
    if _rowcount(conn.execute(_TOUCH_CONTACT, {"b_serial": serial, "b_now": now})) == 1:
        return
    try:
        with s.begin_nested():
            conn.execute(
                _FIRST_CONTACT,
                {"serial": serial, "first_contact_at": now, "last_attested_at": now},
            )
    except IntegrityError:  # a concurrent first attestation won the race: this one is not first
        conn.execute(_TOUCH_CONTACT, {"b_serial": serial, "b_now": now})
        return
    append_audit(s, AuditEvent(event="device.first_contact", outcome="ok", serial=serial), now)
