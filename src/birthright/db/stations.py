"""Station identity, request counters and refusals in the database.

``SqlStationLedger`` implements the three ports of ``birthright.server.station_auth``
(``StationDirectory``, ``CounterLedger``, ``RefusalLog``). The counter check locks the station
row (``SELECT ... FOR UPDATE``; SQLite transactions are ``BEGIN IMMEDIATE``), so replicas
sharing PostgreSQL see each other's counters; the primary key on ``(station_id, counter)`` is
the last guard. ``StationIdentities`` is the operator side: bind a station's certificates.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import BindParameter, bindparam, insert, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from birthright.audit.events import AuditEvent
from birthright.ca.csr import key_fingerprint
from birthright.db.engine import autocommit_reads
from birthright.db.models import StationRequestRow, StationRow, table_of
from birthright.db.repository import add_alert, append_audit, unit_of_work
from birthright.enrollment.model import Alert
from birthright.enrollment.ports import DuplicateRecord
from birthright.errors import ConfigError, ConflictError, InputError, NotFoundError, TransientError
from birthright.server.station_auth import CounterVerdict, StationRecord
from birthright.types import StationId


@lru_cache(maxsize=1024)
def _public_key(cert_der: bytes | None) -> ec.EllipticCurvePublicKey | None:
    """The signing key of a stored station certificate (parsed once per certificate)."""
    if cert_der is None:
        return None
    try:
        key = x509.load_der_x509_certificate(cert_der).public_key()
    except ValueError as e:
        raise ConfigError(
            "a stored station certificate is damaged", code="station_cert_damaged"
        ) from e
    return key if isinstance(key, ec.EllipticCurvePublicKey) else None


def station_record(row: Any) -> StationRecord:
    """From a ``StationRow`` or a Core row of the same columns."""
    return StationRecord(
        station_id=StationId(row.station_id),
        status=row.status,
        public_key=_public_key(row.cert_der),
        tls_cert_fingerprint=row.tls_cert_fingerprint,
        last_counter=row.last_counter,
    )


_STATIONS = table_of(StationRow)
_REQUESTS = table_of(StationRequestRow)
_ID: BindParameter[str] = bindparam("b_station_id")
_SELECT_RECORD = select(
    _STATIONS.c.station_id,
    _STATIONS.c.status,
    _STATIONS.c.cert_der,
    _STATIONS.c.tls_cert_fingerprint,
    _STATIONS.c.last_counter,
).where(_STATIONS.c.station_id == _ID)
_LOCK_COUNTER = (
    select(_STATIONS.c.status, _STATIONS.c.last_counter)
    .where(_STATIONS.c.station_id == _ID)
    .with_for_update()
)
_SEEN = select(_REQUESTS.c.request_digest).where(
    _REQUESTS.c.station_id == _ID, _REQUESTS.c.counter == bindparam("b_counter")
)
_INSERT_REQUEST = insert(_REQUESTS)
_SET_COUNTER = (
    update(_STATIONS)
    .where(_STATIONS.c.station_id == _ID)
    .values(last_counter=bindparam("b_counter"))
)


class SqlStationLedger:
    """Station lookup, the atomic counter check and the refusal audit."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._reads = autocommit_reads(sessions.kw["bind"])

    def station(self, station_id: str) -> StationRecord | None:
        """One read per request, before its signature is checked: no transaction of its own
        on PostgreSQL (each BEGIN and ROLLBACK is a round trip)."""
        try:
            with self._reads.connect() as conn:
                row = conn.execute(_SELECT_RECORD, {"b_station_id": station_id}).first()
                return None if row is None else station_record(row)
        except OperationalError as e:
            raise TransientError(
                "the database is unavailable; retry later", code="db_unavailable"
            ) from e

    def record_request(
        self, station_id: StationId, counter: int, request_digest: str, now: datetime
    ) -> CounterVerdict:
        for _attempt in range(2):
            try:
                with unit_of_work(self._sessions) as s:
                    return _record(s, station_id, counter, request_digest, now)
            except DuplicateRecord:
                # another replica recorded this counter between our read and our commit:
                # run again to classify it (replay or fork) from the committed row
                continue
        raise TransientError("the request counter could not be recorded; retry", code="db_conflict")

    def record_refusal(
        self, code: str, *, station_id: str | None, detail: dict[str, Any], now: datetime
    ) -> None:
        with unit_of_work(self._sessions) as s:
            event = AuditEvent(
                event="station.request_refused",
                outcome="refused",
                code=code,
                station_id=station_id,
                detail=detail,
            )
            append_audit(s, event, now)


def _record(
    s: Session, station_id: StationId, counter: int, digest: str, now: datetime
) -> CounterVerdict:
    conn = s.connection()
    row = conn.execute(_LOCK_COUNTER, {"b_station_id": station_id}).first()
    if row is None:
        return CounterVerdict.UNKNOWN
    if row.status == "revoked":
        return CounterVerdict.REVOKED
    if row.status != "active":
        return CounterVerdict.SUSPENDED
    if counter > row.last_counter:
        # Every recorded counter is at most last_counter: a higher one was never seen. The
        # primary key on (station, counter) stays the last guard against a racing replica.
        conn.execute(
            _INSERT_REQUEST,
            {
                "station_id": station_id,
                "counter": counter,
                "request_digest": digest,
                "received_at": now,
            },
        )
        conn.execute(_SET_COUNTER, {"b_station_id": station_id, "b_counter": counter})
        return CounterVerdict.ACCEPTED
    seen = conn.execute(_SEEN, {"b_station_id": station_id, "b_counter": counter}).scalar()
    station = s.get(StationRow, station_id, with_for_update=True)
    assert station is not None  # locked above
    if seen is not None:
        if seen == digest:
            return CounterVerdict.REPLAYED
        _suspend(
            s, station, "station.counter_fork", now, counter=counter, first=seen, second=digest
        )
        return CounterVerdict.FORK
    _suspend(
        s,
        station,
        "station.counter_regressed",
        now,
        counter=counter,
        last_counter=row.last_counter,
        second=digest,
    )
    return CounterVerdict.REGRESSED


def _suspend(s: Session, row: StationRow, kind: str, now: datetime, **evidence: Any) -> None:
    """Suspend at once; a critical alert and the audit trail go in the same transaction."""
    reason = kind.removeprefix("station.")
    row.status, row.status_reason, row.updated_at = "suspended", reason, now
    message = (
        f"station {row.station_id}: two different requests signed with counter "
        f"{evidence['counter']} (a clone?); suspended"
        if reason == "counter_fork"
        else f"station {row.station_id}: counter went back to {evidence['counter']} "
        f"after {evidence.get('last_counter')}; suspended"
    )
    add_alert(
        s, Alert(kind=kind, severity="critical", message=message, station_id=row.station_id), now
    )
    append_audit(
        s,
        AuditEvent(
            event="station.suspended",
            outcome="alert",
            code=reason,
            station_id=row.station_id,
            detail=evidence,
        ),
        now,
    )


def cert_fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


class StationIdentities:
    """Operator side: bind a station's certificates (audited); status lives in ``Operations``."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def bind(
        self,
        station_id: str,
        *,
        signing_cert: x509.Certificate,
        tls_cert: x509.Certificate,
        now: datetime,
    ) -> StationRecord:
        """Register the station's signing certificate and pin its TLS certificate.

        The caller has checked both with ``verify_station_cert``. A station key may belong to
        one station only (``station_key_taken``).
        """
        key = signing_cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise InputError("a station signing key must be EC P-256", code="station_key_type")
        fingerprint = key_fingerprint(key)
        try:
            with unit_of_work(self._sessions) as s:
                row = _locked(s, station_id)
                row.key_fingerprint = fingerprint
                row.cert_der = signing_cert.public_bytes(Encoding.DER)
                row.tls_cert_fingerprint = cert_fingerprint(tls_cert)
                row.updated_at = now
                detail = {
                    "key_fingerprint": fingerprint,
                    "signing_cert_serial": format(signing_cert.serial_number, "x"),
                    "tls_cert_fingerprint": row.tls_cert_fingerprint,
                }
                append_audit(
                    s,
                    AuditEvent(
                        "station.identity_bound", "ok", station_id=station_id, detail=detail
                    ),
                    now,
                )
                s.flush()
                return station_record(row)
        except DuplicateRecord as e:
            raise ConflictError(
                "this signing key is already bound to another station", code="station_key_taken"
            ) from e

    def get(self, station_id: str) -> StationRecord | None:
        with self._sessions() as s:
            row = s.get(StationRow, station_id)
            return None if row is None else station_record(row)


def _locked(s: Session, station_id: str) -> StationRow:
    row = s.get(StationRow, station_id, with_for_update=True)
    if row is None:
        raise NotFoundError(f"station {station_id!r} is not registered", code="station_unknown")
    return row
