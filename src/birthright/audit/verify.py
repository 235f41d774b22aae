"""Walk the hash chain and its signed checkpoints; report every broken link. Pure: no I/O.

Rows and checkpoints arrive as iterables in ascending ``seq`` order and are consumed once, so a
chain of millions of rows is checked in constant memory (findings are capped at
``MAX_FINDINGS``; the count of the rest is kept).

What each finding means (``seq`` is where the chain first stops being trustworthy):

- ``audit.row_edited`` — a row's stored fields no longer produce its stored hash.
- ``audit.row_deleted`` — ``seq`` numbers are missing before the next row.
- ``audit.row_inserted`` — a row sits between two rows that were linked to each other, or
  beyond the chain head (appended without moving the head).
- ``audit.link_broken`` — the next row does not name this row's hash as its predecessor: this
  row was rewritten (and re-hashed) or replaced.
- ``audit.head_mismatch`` — the row at the head's ``seq`` does not carry the head's hash.
- ``audit.head_missing`` — rows exist but the chain head row does not.
- ``audit.tail_truncated`` — the chain ends before the head, or before a signed checkpoint.
- ``audit.chain_rewritten`` — a signed checkpoint names a hash the row at its ``seq`` lacks.
- ``audit.checkpoint_forged`` — a checkpoint's signature does not verify under the audit key.
- ``audit.checkpoint_unverifiable`` — there is no audit public key to check checkpoints with.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import ec

from birthright.audit.events import GENESIS_HASH, AuditRecord
from birthright.audit.signing import key_id_of, verify_checkpoint

MAX_FINDINGS = 100

ROW_EDITED = "audit.row_edited"
ROW_DELETED = "audit.row_deleted"
ROW_INSERTED = "audit.row_inserted"
LINK_BROKEN = "audit.link_broken"
HEAD_MISMATCH = "audit.head_mismatch"
HEAD_MISSING = "audit.head_missing"
TAIL_TRUNCATED = "audit.tail_truncated"
CHAIN_REWRITTEN = "audit.chain_rewritten"
CHECKPOINT_FORGED = "audit.checkpoint_forged"
CHECKPOINT_UNVERIFIABLE = "audit.checkpoint_unverifiable"


@dataclass(frozen=True)
class Checkpoint:
    """A signature by the backend's audit key over the chain head ``(seq, hash)`` at ``at``."""

    seq: int
    hash: str
    at: datetime
    key_id: str
    signature: bytes

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("Checkpoint.at must be timezone-aware")
        object.__setattr__(self, "at", self.at.astimezone(UTC))


@dataclass(frozen=True)
class Finding:
    id: str
    seq: int | None
    message: str


@dataclass(frozen=True)
class ChainReport:
    rows_checked: int
    checkpoints_verified: int
    #: ``seq`` of the newest checkpoint whose signature verified and whose hash is in the chain.
    last_checkpoint: int | None
    findings: tuple[Finding, ...]
    #: Findings beyond ``MAX_FINDINGS`` that were counted but not kept.
    findings_dropped: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first_broken(self) -> Finding | None:
        """The finding at the lowest ``seq`` (the first broken link), else the first one."""
        located = [f for f in self.findings if f.seq is not None]
        if located:
            return min(located, key=lambda f: f.seq if f.seq is not None else 0)
        return self.findings[0] if self.findings else None

    @property
    def first_broken_seq(self) -> int | None:
        first = self.first_broken
        return first.seq if first else None


@dataclass
class _Walk:
    """Mutable state of one pass over the chain."""

    public_key: ec.EllipticCurvePublicKey | None
    key_id: str | None = None
    prev_seq: int = 0
    prev_hash: str = GENESIS_HASH
    prevprev_hash: str | None = None
    rows: int = 0
    verified: int = 0
    last_checkpoint: int | None = None
    dropped: int = 0
    findings: list[Finding] = field(default_factory=list)
    seen: set[tuple[str, int | None]] = field(default_factory=set)

    def add(self, finding_id: str, seq: int | None, message: str) -> None:
        if (finding_id, seq) in self.seen:
            return
        if len(self.findings) >= MAX_FINDINGS:
            self.dropped += 1
            return
        self.seen.add((finding_id, seq))
        self.findings.append(Finding(finding_id, seq, message))

    def signature_ok(self, cp: Checkpoint) -> bool:
        if self.public_key is None:
            self.add(
                CHECKPOINT_UNVERIFIABLE,
                cp.seq,
                f"checkpoint at seq {cp.seq} cannot be checked: there is no audit public key",
            )
            return False
        expected_id = self.key_id or key_id_of(self.public_key)
        self.key_id = expected_id
        if cp.key_id != expected_id or not verify_checkpoint(
            self.public_key, cp.seq, cp.hash, cp.at, cp.signature
        ):
            self.add(
                CHECKPOINT_FORGED,
                cp.seq,
                f"checkpoint at seq {cp.seq} is not signed by the audit key {expected_id}",
            )
            return False
        return True

    def row(self, r: AuditRecord, head: tuple[int, str] | None) -> None:
        self.rows += 1
        own_ok = r.computed_hash() == r.hash
        if not own_ok:
            self.add(ROW_EDITED, r.seq, f"row {r.seq} does not match its own hash")
        if r.seq <= self.prev_seq:
            self.add(LINK_BROKEN, r.seq, f"row {r.seq} is out of order after row {self.prev_seq}")
            return
        if r.seq > self.prev_seq + 1:
            missing = f"{self.prev_seq + 1}" + (
                f"..{r.seq - 1}" if r.seq - 1 > self.prev_seq + 1 else ""
            )
            self.add(ROW_DELETED, self.prev_seq + 1, f"row(s) {missing} are missing")
        elif r.prev_hash != self.prev_hash:
            self._link(r, own_ok)
        if head is not None and r.seq > head[0]:
            self.add(ROW_INSERTED, r.seq, f"row {r.seq} lies beyond the chain head {head[0]}")
        if head is not None and r.seq == head[0] and r.hash != head[1]:
            self.add(HEAD_MISMATCH, r.seq, f"row {r.seq} does not carry the chain head's hash")
        self.prevprev_hash, self.prev_hash, self.prev_seq = self.prev_hash, r.hash, r.seq

    def _link(self, r: AuditRecord, own_ok: bool) -> None:
        if self.prevprev_hash is not None and r.prev_hash == self.prevprev_hash:
            self.add(
                ROW_INSERTED,
                self.prev_seq,
                f"row {self.prev_seq} was inserted: row {r.seq} follows row {self.prev_seq - 1}",
            )
        elif own_ok and self.prev_seq == 0:
            self.add(LINK_BROKEN, r.seq, f"row {r.seq} does not start from the genesis hash")
        elif own_ok:
            self.add(
                LINK_BROKEN,
                self.prev_seq,
                f"row {r.seq} does not follow row {self.prev_seq}: "
                f"row {self.prev_seq} was rewritten or replaced",
            )

    def checkpoint_at_row(self, cp: Checkpoint, r: AuditRecord) -> None:
        if not self.signature_ok(cp):
            return
        if cp.hash != r.hash:
            self.add(
                CHAIN_REWRITTEN,
                cp.seq,
                f"signed checkpoint at seq {cp.seq} names another hash than row {cp.seq}: "
                f"rows after seq {self.last_checkpoint or 0} were rewritten",
            )
            return
        self.verified += 1
        self.last_checkpoint = cp.seq

    def checkpoint_past_end(self, cp: Checkpoint) -> None:
        if self.signature_ok(cp):
            self.add(
                TAIL_TRUNCATED,
                self.prev_seq + 1,
                f"the chain ends at seq {self.prev_seq} but a signed checkpoint names seq {cp.seq}",
            )


def verify_chain(
    rows: Iterable[AuditRecord],
    *,
    head: tuple[int, str] | None,
    checkpoints: Iterable[Checkpoint],
    public_key: ec.EllipticCurvePublicKey | None,
    start: tuple[int, str] | None = None,
) -> ChainReport:
    """Check every link of ``rows`` (ascending ``seq``) against its predecessor, the head
    ``(seq, hash)`` and the ``checkpoints`` (ascending ``seq``) signed by ``public_key``.

    ``start`` trusts ``(seq, hash)`` as already verified and checks only the rows after it
    (``rows`` must then begin after ``start``); by default the walk begins at genesis.
    """
    walk = _Walk(public_key=public_key)
    if start is not None:
        walk.prev_seq, walk.prev_hash = start
    pending = _Lookahead(iter(checkpoints))
    for r in rows:
        while (cp := pending.peek()) is not None and cp.seq <= r.seq:
            pending.take()
            if cp.seq == r.seq:
                walk.checkpoint_at_row(cp, r)
            else:
                walk.signature_ok(cp)  # its seq is in a gap, already reported as deleted
        walk.row(r, head)
    while (cp := pending.take()) is not None:
        walk.checkpoint_past_end(cp)
    _check_head(walk, head)
    return ChainReport(
        rows_checked=walk.rows,
        checkpoints_verified=walk.verified,
        last_checkpoint=walk.last_checkpoint,
        findings=tuple(walk.findings),
        findings_dropped=walk.dropped,
    )


def _check_head(walk: _Walk, head: tuple[int, str] | None) -> None:
    if head is None:
        if walk.rows:
            walk.add(HEAD_MISSING, None, "audit rows exist but the chain head row is missing")
        return
    head_seq, head_hash = head
    if head_seq > walk.prev_seq:
        walk.add(
            TAIL_TRUNCATED,
            walk.prev_seq + 1,
            f"the chain ends at seq {walk.prev_seq} but the head is at seq {head_seq}",
        )
    elif head_seq == 0 and walk.rows == 0 and head_hash != GENESIS_HASH:
        walk.add(HEAD_MISMATCH, 0, "the empty chain's head does not carry the genesis hash")


class _Lookahead:
    """One-item lookahead over an iterator of checkpoints."""

    def __init__(self, items: Iterator[Checkpoint]) -> None:
        self._items = items
        self._next: Checkpoint | None = None
        self._done = False

    def peek(self) -> Checkpoint | None:
        if self._next is None and not self._done:
            self._next = next(self._items, None)
            self._done = self._next is None
        return self._next

    def take(self) -> Checkpoint | None:
        item = self.peek()
        self._next = None
        return item
