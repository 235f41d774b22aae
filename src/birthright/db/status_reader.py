"""The OCSP status read: one indexed lookup per question, outside the ORM and its transactions.

An OCSP responder asks one question per request, thousands of times a second. Through a
``Session`` each question costs a pooled checkout, a transaction (on SQLite: the process-wide
writer lock and ``BEGIN IMMEDIATE``), ORM objects and a rollback. Here each thread keeps its
own driver connection in autocommit mode, made from the engine's URL but outside its pool, and
asks one plain ``SELECT`` over the unique index on ``devices.cert_serial``. Serve it from one
thread per process (the OCSP routes are async for that): one extra connection per replica.
"""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from birthright.errors import TransientError
from birthright.revocation.model import CertStatus, Reason

_SQL = (
    "SELECT r.revoked_at, r.reason, r.released_at FROM devices d"
    " LEFT OUTER JOIN revocations r ON r.cert_serial = d.cert_serial"
    " WHERE d.cert_serial = {mark}"
)
#: Longest a status read may take on PostgreSQL before the answer is ``tryLater``.
STATEMENT_TIMEOUT_MS = 2000
_GOOD = CertStatus("good")
_UNKNOWN = CertStatus("unknown")


def _utc(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite keeps ISO text, in UTC
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"unexpected time value from the driver: {type(value).__name__}")
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


class SqlStatusReader:
    """Good, revoked or unknown for one certificate serial (lowercase hex)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._sql = _SQL.format(mark="?" if engine.dialect.paramstyle == "qmark" else "%s")
        self._local = threading.local()
        self._reasons = {r.value: r for r in Reason}

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            dialect = self._engine.dialect
            args, kwargs = dialect.create_connect_args(self._engine.url)
            if self._postgres:
                kwargs["autocommit"] = True
                kwargs["options"] = f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
                kwargs.setdefault("connect_timeout", 5)
            else:  # SQLite: autocommit (no BEGIN), and WAL lets a read run beside the writer
                kwargs.update(isolation_level=None, timeout=5, check_same_thread=True)
            connection = self._local.connection = dialect.loaded_dbapi.connect(*args, **kwargs)
        return connection

    def __call__(self, cert_serial: str) -> CertStatus:
        dbapi = self._engine.dialect.loaded_dbapi
        try:
            cursor = self._connection().cursor()
            try:
                cursor.execute(self._sql, (cert_serial,))
                row = cursor.fetchone()
            finally:
                cursor.close()
        except dbapi.Error as e:
            self.close()  # a fresh connection next time
            raise TransientError("the database did not answer a status read") from e
        if row is None:
            return _UNKNOWN
        revoked_at, reason, released_at = row
        if revoked_at is None or released_at is not None:
            return _GOOD
        return CertStatus("revoked", _utc(revoked_at), self._reasons[reason])

    def close(self) -> None:
        """Close this thread's connection (others close when their thread's state goes)."""
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with contextlib.suppress(self._engine.dialect.loaded_dbapi.Error):
                connection.close()
