"""The pure chain verifier on generated chains: every kind of tampering lands at its seq."""

from __future__ import annotations

import dataclasses
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from birthright.audit.events import (
    GENESIS_HASH,
    AuditEvent,
    AuditRecord,
    canonical_detail,
    link_hash,
)
from birthright.audit.signing import AuditSigner, checkpoint_message, verify_checkpoint
from birthright.audit.verify import (
    CHAIN_REWRITTEN,
    CHECKPOINT_FORGED,
    CHECKPOINT_UNVERIFIABLE,
    HEAD_MISMATCH,
    HEAD_MISSING,
    LINK_BROKEN,
    ROW_DELETED,
    ROW_EDITED,
    ROW_INSERTED,
    TAIL_TRUNCATED,
    ChainReport,
    Checkpoint,
    verify_chain,
)

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
PLUS_TWO = timezone(timedelta(hours=2))
SIGNER = AuditSigner.generate()
OTHER_SIGNER = AuditSigner.generate()

Head = tuple[int, str]


def make_row(seq: int, prev_hash: str, *, tag: str = "enroll") -> AuditRecord:
    event = AuditEvent(
        event=tag,
        outcome="refused" if seq % 3 == 0 else "ok",
        code="quota_exhausted" if seq % 3 == 0 else None,
        station_id=f"site1-line1-st{seq % 4}",
        serial=f"BRS-{seq:08d}",
        detail={"n": seq, "chip": f"{seq:016x}", "nested": {"b": [1, 2], "a": None}},
    )
    at = T0 + timedelta(seconds=seq, microseconds=seq)
    digest = link_hash(prev_hash, seq, at, event)
    return AuditRecord(
        seq,
        at,
        event.event,
        event.outcome,
        event.code,
        event.station_id,
        event.serial,
        canonical_detail(event.detail),
        prev_hash,
        digest,
    )


def iter_chain(n: int) -> Iterator[AuditRecord]:
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        row = make_row(seq, prev)
        prev = row.hash
        yield row


def build(n: int) -> list[AuditRecord]:
    return list(iter_chain(n))


def head_of(rows: list[AuditRecord]) -> Head:
    return (rows[-1].seq, rows[-1].hash) if rows else (0, GENESIS_HASH)


def sign(seq: int, digest: str, signer: AuditSigner = SIGNER) -> Checkpoint:
    at = T0 + timedelta(hours=1, seconds=seq)
    return Checkpoint(seq, digest, at, signer.key_id, signer.sign_checkpoint(seq, digest, at))


def checkpoint_of(rows: list[AuditRecord], seq: int) -> Checkpoint:
    return sign(seq, rows[seq - 1].hash)


def check(
    rows: list[AuditRecord],
    head: Head | None,
    checkpoints: list[Checkpoint] | None = None,
) -> ChainReport:
    return verify_chain(
        rows, head=head, checkpoints=checkpoints or [], public_key=SIGNER.public_key
    )


def rehashed(row: AuditRecord) -> AuditRecord:
    """``row`` with its hash recomputed to match its fields (an attacker's careful edit)."""
    return dataclasses.replace(row, hash=row.computed_hash())


# ---- intact chains ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 25], ids=lambda n: f"{n}-rows")
def test_intact_chain_with_checkpoints_is_ok(n: int) -> None:
    rows = build(n)
    checkpoints = [checkpoint_of(rows, s) for s in range(1, n + 1, 7)]
    report = check(rows, head_of(rows), checkpoints)
    assert report.ok, report.findings
    assert report.rows_checked == n
    assert report.checkpoints_verified == len(checkpoints)
    assert report.last_checkpoint == (checkpoints[-1].seq if checkpoints else None)
    assert report.first_broken is None


def test_empty_chain_without_head_is_ok() -> None:
    assert check([], None).ok


def test_rows_without_head_report_head_missing() -> None:
    report = check(build(3), None)
    assert [f.id for f in report.findings] == [HEAD_MISSING]


def test_segment_from_trusted_start() -> None:
    rows = build(20)
    report = verify_chain(
        rows[10:],
        head=head_of(rows),
        checkpoints=[],
        public_key=None,
        start=(10, rows[9].hash),
    )
    assert report.ok
    assert report.rows_checked == 10


def test_naive_timestamps_are_refused() -> None:
    row = build(1)[0]
    with pytest.raises(ValueError, match="timezone-aware"):
        dataclasses.replace(row, at=row.at.replace(tzinfo=None))


def test_any_utc_offset_recomputes_the_same_hash() -> None:
    row = build(1)[0]
    elsewhere = dataclasses.replace(row, at=row.at.astimezone(PLUS_TWO))
    assert elsewhere.computed_hash() == row.hash


# ---- table of tamperings ---------------------------------------------------------------------

Tampered = tuple[list[AuditRecord], Head | None, list[Checkpoint]]
Tamper = Callable[[list[AuditRecord], int], Tampered]


def edit_detail(rows: list[AuditRecord], k: int) -> Tampered:
    out = list(rows)
    out[k - 1] = dataclasses.replace(out[k - 1], detail='{"n":0}')
    return out, head_of(rows), []


def edit_and_rehash(rows: list[AuditRecord], k: int) -> Tampered:
    out = list(rows)
    out[k - 1] = rehashed(dataclasses.replace(out[k - 1], outcome="ok", code=None, detail="{}"))
    return out, head_of(rows), []


def delete_row(rows: list[AuditRecord], k: int) -> Tampered:
    return rows[: k - 1] + rows[k:], head_of(rows), []


def delete_tail(rows: list[AuditRecord], k: int) -> Tampered:
    return rows[: k - 1], head_of(rows), []


def delete_tail_rewind_head(rows: list[AuditRecord], k: int) -> Tampered:
    kept = rows[: k - 1]
    return kept, head_of(kept), [checkpoint_of(rows, len(rows))]


def insert_shifting(rows: list[AuditRecord], k: int) -> Tampered:
    """A forged row at ``k`` linked to ``k - 1``; the rows from ``k`` renumbered one up."""
    prev = rows[k - 2].hash if k > 1 else GENESIS_HASH
    moved = [dataclasses.replace(r, seq=r.seq + 1) for r in rows[k - 1 :]]
    return [*rows[: k - 1], make_row(k, prev, tag="forged"), *moved], head_of(rows), []


def replace_row(rows: list[AuditRecord], k: int) -> Tampered:
    """Row ``k`` deleted and a self-consistent forgery inserted under the same seq."""
    out = list(rows)
    out[k - 1] = make_row(k, rows[k - 2].hash if k > 1 else GENESIS_HASH, tag="forged")
    return out, head_of(rows), []


def append_beyond_head(rows: list[AuditRecord], k: int) -> Tampered:
    return [*rows, make_row(k, rows[k - 2].hash, tag="forged")], head_of(rows), []


def forge_signature(rows: list[AuditRecord], k: int) -> Tampered:
    cp = checkpoint_of(rows, k)
    bad = bytes([cp.signature[0] ^ 1]) + cp.signature[1:]
    return rows, head_of(rows), [dataclasses.replace(cp, signature=bad)]


def sign_with_other_key(rows: list[AuditRecord], k: int) -> Tampered:
    return rows, head_of(rows), [sign(k, rows[k - 1].hash, OTHER_SIGNER)]


def rewrite_from(rows: list[AuditRecord], k: int) -> Tampered:
    """Rows from ``k`` replaced by a new, self-consistent chain with the head moved along."""
    out = rows[: k - 1]
    for seq in range(k, len(rows) + 1):
        out.append(make_row(seq, out[-1].hash if out else GENESIS_HASH, tag="forged"))
    return out, head_of(out), [checkpoint_of(rows, len(rows))]


N = 12
CASES: list[tuple[str, Tamper, int, str, int]] = [
    ("edit-middle", edit_detail, 5, ROW_EDITED, 5),
    ("edit-first", edit_detail, 1, ROW_EDITED, 1),
    ("edit-last", edit_detail, N, ROW_EDITED, N),
    ("edit-rehash-middle", edit_and_rehash, 5, LINK_BROKEN, 5),
    ("edit-rehash-last", edit_and_rehash, N, HEAD_MISMATCH, N),
    ("delete-middle", delete_row, 5, ROW_DELETED, 5),
    ("delete-first", delete_row, 1, ROW_DELETED, 1),
    ("delete-tail", delete_tail, 9, TAIL_TRUNCATED, 9),
    ("delete-tail-rewind-head", delete_tail_rewind_head, 9, TAIL_TRUNCATED, 9),
    ("delete-all-rewind-head", delete_tail_rewind_head, 1, TAIL_TRUNCATED, 1),
    ("insert-middle", insert_shifting, 5, ROW_INSERTED, 5),
    ("insert-first", insert_shifting, 1, ROW_INSERTED, 1),
    ("replace-middle", replace_row, 5, LINK_BROKEN, 5),
    ("append-beyond-head", append_beyond_head, N + 1, ROW_INSERTED, N + 1),
    ("checkpoint-signature", forge_signature, 7, CHECKPOINT_FORGED, 7),
    ("checkpoint-other-key", sign_with_other_key, 7, CHECKPOINT_FORGED, 7),
    ("rewrite-from-4", rewrite_from, 4, CHAIN_REWRITTEN, N),
]


@pytest.mark.parametrize(
    ("tamper", "k", "finding", "seq"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_tampering_is_reported_at_its_seq(tamper: Tamper, k: int, finding: str, seq: int) -> None:
    report = check(*tamper(build(N), k))
    first = report.first_broken
    assert first is not None
    assert (first.id, first.seq) == (finding, seq), report.findings


def test_truncation_with_rewound_head_is_invisible_without_a_checkpoint() -> None:
    rows, head, _ = delete_tail_rewind_head(build(N), 9)
    assert check(rows, head).ok  # which is why the head is signed periodically


def test_checkpoints_without_public_key_are_unverifiable() -> None:
    rows = build(3)
    report = verify_chain(
        rows, head=head_of(rows), checkpoints=[checkpoint_of(rows, 2)], public_key=None
    )
    assert [(f.id, f.seq) for f in report.findings] == [(CHECKPOINT_UNVERIFIABLE, 2)]


def test_findings_are_capped_and_counted() -> None:
    rows = [dataclasses.replace(r, detail="{}") for r in build(150)]
    report = check(rows, head_of(rows))
    assert len(report.findings) == 100
    assert report.findings_dropped == 50


# ---- property: any single mutation is found where it was made ---------------------------------

KINDS = ["edit", "edit-rehash", "delete", "delete-tail", "insert", "replace", "forge-checkpoint"]


def _flip(digest: str) -> str:
    return ("f" if digest[0] != "f" else "e") + digest[1:]


EDITS: dict[str, Callable[[AuditRecord], AuditRecord]] = {
    "at": lambda r: dataclasses.replace(r, at=r.at + timedelta(microseconds=1)),
    "event": lambda r: dataclasses.replace(r, event=r.event + "x"),
    "outcome": lambda r: dataclasses.replace(r, outcome="alert"),
    "code": lambda r: dataclasses.replace(r, code=(r.code or "") + "x"),
    "station_id": lambda r: dataclasses.replace(r, station_id=None),
    "serial": lambda r: dataclasses.replace(r, serial=(r.serial or "") + "x"),
    "detail": lambda r: dataclasses.replace(r, detail=r.detail.replace(":", ": ", 1)),
    "prev_hash": lambda r: dataclasses.replace(r, prev_hash=_flip(r.prev_hash)),
    "hash": lambda r: dataclasses.replace(r, hash=_flip(r.hash)),
}


@given(
    n=st.integers(min_value=1, max_value=30),
    kind=st.sampled_from(KINDS),
    where=st.floats(min_value=0, max_value=1, exclude_max=True),
    field_name=st.sampled_from(sorted(EDITS)),
)
def test_single_mutation_is_detected_at_its_seq(
    n: int, kind: str, where: float, field_name: str
) -> None:
    rows = build(n)
    k = 1 + int(where * n)
    head: Head = head_of(rows)
    checkpoints = [checkpoint_of(rows, n)]
    expected = k
    if kind == "edit":
        rows[k - 1] = EDITS[field_name](rows[k - 1])
    elif kind == "edit-rehash":
        rows[k - 1] = rehashed(dataclasses.replace(rows[k - 1], detail='{"forged":true}'))
    elif kind == "delete":
        del rows[k - 1]
    elif kind == "delete-tail":
        rows = rows[: k - 1]
        head = head_of(rows)
    elif kind == "insert":
        rows = insert_shifting(rows, k)[0]
    elif kind == "replace":
        rows[k - 1] = make_row(k, rows[k - 2].hash if k > 1 else GENESIS_HASH, tag="forged")
    else:
        bad = checkpoints[0].signature[:-1] + bytes([checkpoints[0].signature[-1] ^ 1])
        checkpoints = [dataclasses.replace(checkpoints[0], signature=bad)]
        expected = n
    report = check(rows, head, checkpoints)
    assert not report.ok
    assert report.first_broken_seq == expected, report.findings


# ---- checkpoint signatures --------------------------------------------------------------------


def test_checkpoint_message_is_domain_separated_and_utc() -> None:
    at = datetime(2025, 1, 1, 12, tzinfo=UTC)
    msg = checkpoint_message(7, "ab" * 32, at)
    assert msg.startswith(b"birthright-audit-checkpoint-v1\n")
    assert msg.endswith(b"2025-01-01T12:00:00+00:00")
    assert checkpoint_message(7, "ab" * 32, at.astimezone(PLUS_TWO)) == msg


SIGNED = (7, "ab" * 32, T0 + timedelta(days=1))


@pytest.mark.parametrize(
    "claimed",
    [(8, SIGNED[1], SIGNED[2]), (7, "cd" * 32, SIGNED[2]), (7, SIGNED[1], T0)],
    ids=["seq", "hash", "time"],
)
def test_checkpoint_signature_covers_every_field(claimed: tuple[int, str, datetime]) -> None:
    signature = SIGNER.sign_checkpoint(*SIGNED)
    assert verify_checkpoint(SIGNER.public_key, *SIGNED, signature)
    assert not verify_checkpoint(SIGNER.public_key, *claimed, signature)


def test_garbage_signature_is_rejected_not_raised() -> None:
    assert not verify_checkpoint(SIGNER.public_key, 1, GENESIS_HASH, T0, b"\x00garbage")


# ---- streaming ---------------------------------------------------------------------------------


def _peak_bytes(n: int) -> int:
    """Peak memory traced while verifying a lazily generated ``n``-row chain."""
    checkpoints = [sign(row.seq, row.hash) for row in iter_chain(n) if row.seq % 500 == 0]
    head = checkpoints[-1].seq, checkpoints[-1].hash
    tracemalloc.start()
    try:
        report = verify_chain(
            iter_chain(n), head=head, checkpoints=iter(checkpoints), public_key=SIGNER.public_key
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.ok
    assert (report.rows_checked, report.checkpoints_verified) == (n, n // 500)
    return peak


def test_verification_streams_in_bounded_memory() -> None:
    small, large = _peak_bytes(1_000), _peak_bytes(8_000)
    # Keeping the rows would cost ~1 KB each: 7 MB more for the larger chain.
    assert large - small < 200_000, (small, large)
