"""Operator accounts, sessions and tokens in SQL (the ``OperatorStore`` port)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from birthright.db.models import OperatorRow, OperatorSessionRow, OperatorTokenRow
from birthright.db.repository import _utc, unit_of_work
from birthright.enrollment.ports import DuplicateRecord
from birthright.errors import ConflictError
from birthright.operators.model import Credentials, Operator, SessionRecord
from birthright.operators.roles import Role


def _operator(row: OperatorRow) -> Operator:
    return Operator(
        name=row.name,
        role=Role(row.role),
        created_at=_utc(row.created_at),
        disabled=row.disabled,
        site=row.site,
        line=row.line,
    )


class SqlOperatorStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def add(self, operator: Operator, password_hash: str) -> None:
        try:
            with unit_of_work(self._sessions) as s:
                s.add(
                    OperatorRow(
                        name=operator.name,
                        role=operator.role.value,
                        password_hash=password_hash,
                        site=operator.site,
                        line=operator.line,
                        disabled=False,
                        failed_logins=0,
                        created_at=operator.created_at,
                    )
                )
        except DuplicateRecord as e:
            raise ConflictError(
                f"operator {operator.name!r} exists already", code="operator_exists"
            ) from e

    def credentials(self, name: str) -> Credentials | None:
        with self._sessions() as s:
            row = s.get(OperatorRow, name)
            if row is None:
                return None
            locked = _utc(row.locked_until) if row.locked_until else None
            return Credentials(_operator(row), row.password_hash, row.failed_logins, locked)

    def list(self) -> list[Operator]:
        with self._sessions() as s:
            return [_operator(r) for r in s.scalars(select(OperatorRow).order_by(OperatorRow.name))]

    def _update(self, name: str, **values: object) -> None:
        with unit_of_work(self._sessions) as s:
            s.execute(update(OperatorRow).where(OperatorRow.name == name).values(**values))

    def set_password_hash(self, name: str, password_hash: str) -> None:
        self._update(name, password_hash=password_hash)

    def login_failed(self, name: str, locked_until: datetime | None) -> None:
        values: dict[str, object] = {"failed_logins": OperatorRow.failed_logins + 1}
        if locked_until is not None:
            values = {"failed_logins": 0, "locked_until": locked_until}
        self._update(name, **values)

    def login_succeeded(self, name: str) -> None:
        self._update(name, failed_logins=0, locked_until=None)

    def set_disabled(self, name: str, disabled: bool) -> None:
        self._update(name, disabled=disabled)

    def add_session(self, digest: str, name: str, now: datetime) -> None:
        with unit_of_work(self._sessions) as s:
            s.add(
                OperatorSessionRow(digest=digest, operator=name, created_at=now, last_seen_at=now)
            )

    def session(self, digest: str) -> SessionRecord | None:
        with self._sessions() as s:
            row = s.get(OperatorSessionRow, digest)
            if row is None:
                return None
            return SessionRecord(row.operator, _utc(row.created_at), _utc(row.last_seen_at))

    def touch_session(self, digest: str, now: datetime) -> None:
        with unit_of_work(self._sessions) as s:
            s.execute(
                update(OperatorSessionRow)
                .where(OperatorSessionRow.digest == digest)
                .values(last_seen_at=now)
            )

    def end_session(self, digest: str) -> None:
        with unit_of_work(self._sessions) as s:
            s.execute(delete(OperatorSessionRow).where(OperatorSessionRow.digest == digest))

    def end_sessions_of(self, name: str) -> None:
        with unit_of_work(self._sessions) as s:
            s.execute(delete(OperatorSessionRow).where(OperatorSessionRow.operator == name))

    def add_token(self, digest: str, name: str, label: str, now: datetime) -> None:
        with unit_of_work(self._sessions) as s:
            s.add(OperatorTokenRow(digest=digest, operator=name, label=label, created_at=now))

    def token_owner(self, digest: str) -> str | None:
        with self._sessions() as s:
            row = s.get(OperatorTokenRow, digest)
            return row.operator if row else None
