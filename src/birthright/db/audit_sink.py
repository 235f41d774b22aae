"""Write one audit event in its own transaction (the audit port of small use cases)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from birthright.audit.events import AuditEvent
from birthright.db.repository import append_audit, unit_of_work


class SqlAuditSink:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def record(self, event: AuditEvent, now: datetime) -> None:
        with unit_of_work(self._sessions) as s:
            append_audit(s, event, now)
