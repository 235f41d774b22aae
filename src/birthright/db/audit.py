"""The SQL side of the audit log: stream the chain, sign its head, list events.

Reads are batched with keyset pagination (``seq > last ORDER BY seq LIMIT n``), each batch in
its own short transaction, so a million-row chain is walked in bounded memory without holding
a lock (SQLite sessions begin IMMEDIATE) for the whole walk.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from birthright.audit.events import GENESIS_HASH, AuditRecord
from birthright.audit.signing import AuditSigner, verify_checkpoint
from birthright.audit.verify import ChainReport, Checkpoint, verify_chain
from birthright.db.models import AuditCheckpointRow, AuditEventRow, AuditHeadRow
from birthright.db.repository import unit_of_work
from birthright.errors import BirthrightError, TrustError

logger = logging.getLogger(__name__)

_EVENT_COLUMNS = (
    AuditEventRow.seq,
    AuditEventRow.at,
    AuditEventRow.event,
    AuditEventRow.outcome,
    AuditEventRow.code,
    AuditEventRow.station_id,
    AuditEventRow.serial,
    AuditEventRow.detail,
    AuditEventRow.prev_hash,
    AuditEventRow.hash,
)
_CHECKPOINT_COLUMNS = (
    AuditCheckpointRow.seq,
    AuditCheckpointRow.hash,
    AuditCheckpointRow.at,
    AuditCheckpointRow.key_id,
    AuditCheckpointRow.signature,
)


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored as UTC); PostgreSQL uses the session zone."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _record(row: Any) -> AuditRecord:
    seq, at, event, outcome, code, station_id, serial, detail, prev_hash, digest = row
    return AuditRecord(
        int(seq), _utc(at), event, outcome, code, station_id, serial, detail, prev_hash, digest
    )


def _checkpoint(row: Any) -> Checkpoint:
    seq, digest, at, key_id, signature = row
    return Checkpoint(int(seq), digest, _utc(at), key_id, bytes(signature))


def iter_audit_records(
    sessions: sessionmaker[Session],
    *,
    after: int = 0,
    upto: int | None = None,
    batch: int = 5000,
) -> Iterator[AuditRecord]:
    """Rows with ``after < seq <= upto`` in ascending ``seq``, fetched ``batch`` at a time.

    Only the lower bound goes into SQL: ``seq > last ORDER BY seq LIMIT n`` is an index range
    scan on every planner, whereas a two-sided range on an unanalysed table is not.
    """
    last = after
    while True:
        query = select(*_EVENT_COLUMNS).where(AuditEventRow.seq > last)
        with sessions() as session:
            rows = session.execute(query.order_by(AuditEventRow.seq).limit(batch)).all()
        for row in rows:
            record = _record(row)
            if upto is not None and record.seq > upto:
                return
            last = record.seq
            yield record
        if len(rows) < batch:
            return


def iter_checkpoints(
    sessions: sessionmaker[Session], *, upto: int | None = None, batch: int = 1000
) -> Iterator[Checkpoint]:
    """Checkpoints with ``seq <= upto`` in ascending ``seq``, fetched ``batch`` at a time."""
    last = -1
    while True:
        query = select(*_CHECKPOINT_COLUMNS).where(AuditCheckpointRow.seq > last)
        with sessions() as session:
            rows = session.execute(query.order_by(AuditCheckpointRow.seq).limit(batch)).all()
        for row in rows:
            cp = _checkpoint(row)
            if upto is not None and cp.seq > upto:
                return
            last = cp.seq
            yield cp
        if len(rows) < batch:
            return


def audit_head(sessions: sessionmaker[Session]) -> tuple[int, str] | None:
    with sessions() as session:
        row = session.execute(
            select(AuditHeadRow.seq, AuditHeadRow.hash).where(AuditHeadRow.id == 1)
        ).one_or_none()
    return None if row is None else (int(row[0]), row[1])


@dataclass(frozen=True)
class ChainBounds:
    """The head and the highest row and checkpoint ``seq``, read in one statement (snapshot)."""

    head: tuple[int, str] | None
    max_seq: int
    max_checkpoint: int | None


def chain_bounds(sessions: sessionmaker[Session]) -> ChainBounds:
    head = select(AuditHeadRow.seq).where(AuditHeadRow.id == 1).scalar_subquery()
    head_hash = select(AuditHeadRow.hash).where(AuditHeadRow.id == 1).scalar_subquery()
    max_seq = select(func.max(AuditEventRow.seq)).scalar_subquery()
    max_cp = select(func.max(AuditCheckpointRow.seq)).scalar_subquery()
    with sessions() as session:
        seq, digest, top, top_cp = session.execute(select(head, head_hash, max_seq, max_cp)).one()
    return ChainBounds(
        head=None if seq is None else (int(seq), digest),
        max_seq=int(top or 0),
        max_checkpoint=None if top_cp is None else int(top_cp),
    )


def verify_audit_log(
    sessions: sessionmaker[Session],
    public_key: ec.EllipticCurvePublicKey | None,
    *,
    batch: int = 5000,
) -> ChainReport:
    """Verify the whole chain as of one snapshot of its bounds; appends made meanwhile (which
    land above those bounds) are left for the next run."""
    bounds = chain_bounds(sessions)
    upto = max(bounds.max_seq, bounds.head[0] if bounds.head else 0)
    return verify_chain(
        iter_audit_records(sessions, upto=upto, batch=batch),
        head=bounds.head,
        checkpoints=(
            iter_checkpoints(sessions, upto=bounds.max_checkpoint)
            if bounds.max_checkpoint is not None
            else ()
        ),
        public_key=public_key,
    )


def last_checkpoint(session: Session) -> Checkpoint | None:
    row = session.execute(
        select(*_CHECKPOINT_COLUMNS).order_by(AuditCheckpointRow.seq.desc()).limit(1)
    ).one_or_none()
    return None if row is None else _checkpoint(row)


def _require_intact(report: ChainReport) -> None:
    first = report.first_broken
    if first is not None:
        raise TrustError(
            f"the audit chain is broken ({first.id} at seq {first.seq}); refusing to sign it",
            code="audit_chain_broken",
        )


def _trusted_start(anchor: Checkpoint | None, signer: AuditSigner) -> tuple[int, str]:
    """Where signing may resume: the last checkpoint, if our key really signed it."""
    if anchor is None:
        return (0, GENESIS_HASH)
    if anchor.key_id != signer.key_id or not verify_checkpoint(
        signer.public_key, anchor.seq, anchor.hash, anchor.at, anchor.signature
    ):
        raise TrustError(
            f"the last audit checkpoint (seq {anchor.seq}) is not signed by the audit key "
            f"{signer.key_id}; refusing to sign after it",
            code="audit_chain_broken",
        )
    return (anchor.seq, anchor.hash)


def _verify_segment(
    rows: Iterable[AuditRecord], start: tuple[int, str], head: tuple[int, str]
) -> None:
    if head[0] < start[0] or (head[0] == start[0] and head[1] != start[1]):
        raise TrustError(
            f"the audit head (seq {head[0]}) is behind or off the last checkpoint "
            f"(seq {start[0]}); refusing to sign it",
            code="audit_chain_broken",
        )
    _require_intact(verify_chain(rows, head=head, checkpoints=(), public_key=None, start=start))


def write_checkpoint(
    sessions: sessionmaker[Session],
    signer: AuditSigner,
    now: datetime,
    *,
    batch: int = 5000,
) -> Checkpoint | None:
    """Sign the current head; ``None`` when it has not moved since the last checkpoint.

    The rows since the last checkpoint are verified first (outside the head lock, then the few
    appended meanwhile under it), so a broken chain is never signed: ``TrustError``.
    """
    with sessions() as session:
        start = _trusted_start(last_checkpoint(session), signer)
    seen = audit_head(sessions) or (0, GENESIS_HASH)
    if seen == start:
        return None  # nothing appended since the last checkpoint
    _verify_segment(
        iter_audit_records(sessions, after=start[0], upto=seen[0], batch=batch), start, seen
    )
    at = _utc(now)
    with unit_of_work(sessions) as session:
        row = session.execute(
            select(AuditHeadRow).where(AuditHeadRow.id == 1).with_for_update()
        ).scalar_one_or_none()
        if row is None or row.seq == 0:
            return None
        head = (row.seq, row.hash)
        newest = session.execute(select(func.max(AuditCheckpointRow.seq))).scalar()
        if newest is not None and newest > head[0]:
            _verify_segment((), (int(newest), ""), head)  # the head went behind a checkpoint
        if newest is not None and newest == head[0]:
            return None  # another signer won the race
        tail = session.execute(
            select(*_EVENT_COLUMNS)
            .where(AuditEventRow.seq > seen[0], AuditEventRow.seq <= head[0])
            .order_by(AuditEventRow.seq)
        ).all()
        _verify_segment((_record(r) for r in tail), seen, head)
        cp = Checkpoint(*head, at, signer.key_id, signer.sign_checkpoint(*head, at))
        session.add(
            AuditCheckpointRow(
                seq=cp.seq, hash=cp.hash, at=cp.at, key_id=cp.key_id, signature=cp.signature
            )
        )
    logger.info("audit checkpoint signed seq=%d hash=%s key_id=%s", cp.seq, cp.hash, cp.key_id)
    return cp


def list_events(
    sessions: sessionmaker[Session],
    *,
    limit: int = 50,
    offset: int = 0,
    event: str | None = None,
    outcome: str | None = None,
) -> list[AuditRecord]:
    """The newest events first, optionally only one ``event`` kind or ``outcome``."""
    query = select(*_EVENT_COLUMNS)
    if event is not None:
        query = query.where(AuditEventRow.event == event)
    if outcome is not None:
        query = query.where(AuditEventRow.outcome == outcome)
    query = query.order_by(AuditEventRow.seq.desc()).limit(limit).offset(offset)
    with sessions() as session:
        return [_record(r) for r in session.execute(query).all()]


class AuditCheckpointer:
    """Signs the chain head periodically; run ``run_forever`` in a daemon thread."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        signer: AuditSigner,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._signer = signer
        self._clock = clock

    def run_once(self, now: datetime | None = None) -> Checkpoint | None:
        return write_checkpoint(self._sessions, self._signer, now or self._clock())

    def run_forever(self, interval_seconds: float, stop_event: threading.Event) -> None:
        """Checkpoint now, then every ``interval_seconds`` until ``stop_event`` is set.

        A broken chain or an unavailable database is logged and retried on the next tick;
        the loop never signs a chain it could not verify.
        """
        while not stop_event.is_set():
            try:
                self.run_once()
            except TrustError as e:
                logger.error("audit chain check failed code=%s message=%s", e.code, e.message)
            except BirthrightError as e:
                logger.warning("audit checkpoint skipped code=%s message=%s", e.code, e.message)
            stop_event.wait(interval_seconds)
