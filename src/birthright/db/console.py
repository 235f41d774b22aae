"""Read models the operator console shows that no use case already answers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from birthright.db.models import AttestationRow, AuditEventRow, DeviceRow
from birthright.db.repository import _utc, device_from_row
from birthright.enrollment.model import DeviceRecord


@dataclass(frozen=True)
class AttestationEntry:
    at: datetime
    verdict: str
    findings: list[str]


class ConsoleQueries:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def find_device(self, text: str) -> DeviceRecord | None:
        """The unit whose product serial or chip id is ``text``."""
        with self._sessions() as s:
            row = s.execute(
                select(DeviceRow).where(or_(DeviceRow.serial == text, DeviceRow.chip_id == text))
            ).scalar_one_or_none()
            return device_from_row(row) if row else None

    def attestations(self, serial: str, *, limit: int = 50) -> list[AttestationEntry]:
        with self._sessions() as s:
            rows = s.execute(
                select(AttestationRow)
                .where(AttestationRow.serial == serial)
                .order_by(AttestationRow.id.desc())
                .limit(limit)
            ).scalars()
            return [AttestationEntry(_utc(r.at), r.verdict, _finding_ids(r.findings)) for r in rows]

    def refusals_since(self, since: datetime) -> int:
        """Refused requests (any kind) recorded in the audit chain since ``since``."""
        with self._sessions() as s:
            return int(
                s.execute(
                    select(func.count())
                    .select_from(AuditEventRow)
                    .where(AuditEventRow.outcome == "refused", AuditEventRow.at >= since)
                ).scalar_one()
            )


def _finding_ids(stored: str) -> list[str]:
    try:
        parsed = json.loads(stored)
    except ValueError:
        return []
    if not isinstance(parsed, list):
        return []
    return [
        f"{f.get('id', '?')}: {f.get('status', '?')}" if isinstance(f, dict) else str(f)
        for f in parsed
    ]
