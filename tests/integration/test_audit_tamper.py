"""The audit chain in a real database: tamper with raw SQL, then `audit verify` must say where."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from birthright.audit.events import AuditEvent, canonical_detail, link_hash
from birthright.audit.signing import AuditSigner, load_audit_public_key, load_or_create_audit_signer
from birthright.audit.verify import (
    CHECKPOINT_FORGED,
    LINK_BROKEN,
    ROW_DELETED,
    ROW_EDITED,
    ROW_INSERTED,
    TAIL_TRUNCATED,
    ChainReport,
)
from birthright.db.audit import AuditCheckpointer, list_events, verify_audit_log, write_checkpoint
from birthright.db.engine import make_engine, make_sessionmaker
from birthright.db.repository import append_audit, unit_of_work
from birthright.errors import TrustError
from birthright.settings import Settings, write_settings_file

SIGNED_UPTO = 20
HEAD = 25


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def signer(settings: Settings) -> AuditSigner:
    return load_or_create_audit_signer(settings)


def event(i: int) -> AuditEvent:
    refused = i % 4 == 0
    return AuditEvent(
        event="enroll",
        outcome="refused" if refused else "ok",
        code="quota_exhausted" if refused else None,
        station_id=f"site1-line1-st{i % 3}",
        serial=f"BRS-{i:08d}",
        detail={"i": i, "ratio": i / 7, "note": "Größe ✓", "nested": {"z": [1, None], "a": True}},
    )


def append(sessions: sessionmaker[Session], first: int, last: int) -> None:
    """Events ``first..last``, two per transaction, each stamped with the real clock."""
    for i in range(first, last + 1, 2):
        with unit_of_work(sessions) as session:
            for j in range(i, min(i + 2, last + 1)):
                append_audit(session, event(j), datetime.now(UTC))


@pytest.fixture
def chain(sessions: sessionmaker[Session], signer: AuditSigner) -> sessionmaker[Session]:
    """25 events; the head was signed at seq 20."""
    append(sessions, 1, SIGNED_UPTO)
    assert write_checkpoint(sessions, signer, datetime.now(UTC)) is not None
    append(sessions, SIGNED_UPTO + 1, HEAD)
    return sessions


def sql(engine: Engine, statement: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def row_hash(engine: Engine, seq: int) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT hash FROM audit_events WHERE seq = :s"), {"s": seq}
            ).scalar_one()
        )


def insert_forged(engine: Engine, seq: int, prev_hash: str) -> None:
    """A row an attacker made consistent with its own hash and its predecessor."""
    forged = AuditEvent("enroll", "ok", serial="BRS-FORGED", detail={"forged": True})
    at = datetime.now(UTC)
    sql(
        engine,
        "INSERT INTO audit_events (seq, at, event, outcome, code, station_id, serial, detail,"
        " prev_hash, hash) VALUES (:seq, :at, :event, :outcome, NULL, NULL, :serial, :detail,"
        " :prev, :hash)",
        seq=seq,
        at=at,
        event=forged.event,
        outcome=forged.outcome,
        serial=forged.serial,
        detail=canonical_detail(forged.detail),
        prev=prev_hash,
        hash=link_hash(prev_hash, seq, at, forged),
    )


def verify(sessions: sessionmaker[Session], settings: Settings) -> ChainReport:
    return verify_audit_log(sessions, load_audit_public_key(settings), batch=7)


def test_intact_chain_verifies_across_batches(
    chain: sessionmaker[Session], settings: Settings
) -> None:
    report = verify(chain, settings)
    assert report.ok, report.findings
    assert (report.rows_checked, report.checkpoints_verified) == (HEAD, 1)
    assert report.last_checkpoint == SIGNED_UPTO


def test_checkpoint_skips_an_unmoved_head(
    chain: sessionmaker[Session], signer: AuditSigner, settings: Settings
) -> None:
    cp = write_checkpoint(chain, signer, datetime.now(UTC))
    assert cp is not None
    assert cp.seq == HEAD
    assert write_checkpoint(chain, signer, datetime.now(UTC)) is None
    report = verify(chain, settings)
    assert (report.ok, report.checkpoints_verified, report.last_checkpoint) == (True, 2, HEAD)


def _update_detail(engine: Engine) -> None:
    sql(engine, "UPDATE audit_events SET detail = :d WHERE seq = 7", d='{"i":7}')


def _update_code(engine: Engine) -> None:
    sql(engine, "UPDATE audit_events SET code = NULL, outcome = 'ok' WHERE seq = 8")


def _delete_middle(engine: Engine) -> None:
    sql(engine, "DELETE FROM audit_events WHERE seq = 12")


def _replace_middle(engine: Engine) -> None:
    prev = row_hash(engine, 11)
    sql(engine, "DELETE FROM audit_events WHERE seq = 12")
    insert_forged(engine, 12, prev)


def _insert_shifting(engine: Engine) -> None:
    prev = row_hash(engine, 11)
    sql(engine, "UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 12")
    sql(engine, "UPDATE audit_events SET seq = seq - 999 WHERE seq > 1000")
    insert_forged(engine, 12, prev)


def _append_without_head(engine: Engine) -> None:
    insert_forged(engine, HEAD + 1, row_hash(engine, HEAD))


def _truncate_and_rewind_head(engine: Engine) -> None:
    keep = 15
    sql(engine, "DELETE FROM audit_events WHERE seq > :k", k=keep)
    sql(engine, "UPDATE audit_head SET seq = :k, hash = :h", k=keep, h=row_hash(engine, keep))


def _forge_checkpoint_signature(engine: Engine) -> None:
    with engine.connect() as conn:
        signature = bytes(
            conn.execute(text("SELECT signature FROM audit_checkpoints")).scalar_one()
        )
    forged = signature[:-1] + bytes([signature[-1] ^ 0x01])
    sql(engine, "UPDATE audit_checkpoints SET signature = :s", s=forged)


def _move_checkpoint(engine: Engine) -> None:
    sql(engine, "UPDATE audit_checkpoints SET seq = 15, hash = :h", h=row_hash(engine, 15))


TAMPERINGS: list[tuple[str, Callable[[Engine], None], str, int]] = [
    ("update-detail", _update_detail, ROW_EDITED, 7),
    ("update-code", _update_code, ROW_EDITED, 8),
    ("delete-middle", _delete_middle, ROW_DELETED, 12),
    ("insert-replacing", _replace_middle, LINK_BROKEN, 12),
    ("insert-shifting", _insert_shifting, ROW_INSERTED, 12),
    ("append-without-head", _append_without_head, ROW_INSERTED, HEAD + 1),
    ("truncate-and-rewind-head", _truncate_and_rewind_head, TAIL_TRUNCATED, 16),
    ("forge-checkpoint-signature", _forge_checkpoint_signature, CHECKPOINT_FORGED, SIGNED_UPTO),
    ("move-checkpoint", _move_checkpoint, CHECKPOINT_FORGED, 15),
]


@pytest.mark.parametrize(
    ("tamper", "finding", "seq"), [t[1:] for t in TAMPERINGS], ids=[t[0] for t in TAMPERINGS]
)
def test_tampering_is_reported_at_its_seq(
    chain: sessionmaker[Session],
    engine: Engine,
    settings: Settings,
    tamper: Callable[[Engine], None],
    finding: str,
    seq: int,
) -> None:
    assert verify(chain, settings).ok
    tamper(engine)
    report = verify(chain, settings)
    first = report.first_broken
    assert first is not None
    assert (first.id, first.seq) == (finding, seq), report.findings


def test_truncation_with_rewound_head_is_caught_only_by_the_checkpoint(
    chain: sessionmaker[Session], engine: Engine, settings: Settings
) -> None:
    _truncate_and_rewind_head(engine)
    sql(engine, "DELETE FROM audit_checkpoints")
    assert verify(chain, settings).ok  # without a signed checkpoint the chain looks whole


def _update_after_checkpoint(engine: Engine) -> None:
    sql(engine, "UPDATE audit_events SET serial = 'BRS-OTHER' WHERE seq = :s", s=HEAD - 1)


@pytest.mark.parametrize(
    "tamper",
    [_update_after_checkpoint, _truncate_and_rewind_head, _forge_checkpoint_signature],
    ids=["edited-row", "rewound-head", "forged-checkpoint"],
)
def test_a_broken_chain_is_never_signed(
    chain: sessionmaker[Session],
    engine: Engine,
    signer: AuditSigner,
    tamper: Callable[[Engine], None],
) -> None:
    tamper(engine)
    append(chain, 100, 101)
    with pytest.raises(TrustError) as err:
        write_checkpoint(chain, signer, datetime.now(UTC))
    assert err.value.code == "audit_chain_broken"


def test_postgres_session_time_zone_does_not_change_hashes(
    database_url: str, chain: sessionmaker[Session], settings: Settings
) -> None:
    extra: dict[str, Any] = {}
    if not database_url.startswith("sqlite"):
        extra["connect_args"] = {"options": "-c TimeZone=Asia/Kolkata"}
    engine = make_engine(database_url, **extra)
    try:
        report = verify(make_sessionmaker(engine), settings)
    finally:
        engine.dispose()
    assert report.ok, report.findings


def test_concurrent_appends_checkpoints_and_verification(
    sessions: sessionmaker[Session], signer: AuditSigner, settings: Settings
) -> None:
    append(sessions, 1, 1)  # the first append creates the head row (racy when concurrent)
    stop = threading.Event()
    checkpointer = AuditCheckpointer(
        sessions=sessions, signer=signer, clock=lambda: datetime.now(UTC)
    )
    background = threading.Thread(target=checkpointer.run_forever, args=(0.01, stop))
    background.start()
    writers = [
        threading.Thread(target=append, args=(sessions, 1000 * w, 1000 * w + 39))
        for w in range(1, 5)
    ]
    reports: list[ChainReport] = []
    try:
        for t in writers:
            t.start()
        while any(t.is_alive() for t in writers):
            reports.append(verify(sessions, settings))
    finally:
        for t in writers:
            t.join()
        stop.set()
        background.join()
    final = verify(sessions, settings)
    assert final.ok, final.findings
    assert final.rows_checked == 161
    assert final.checkpoints_verified >= 1
    assert all(r.ok for r in reports), [r.findings for r in reports if not r.ok]


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "birthright.cli.main",
            "audit",
            *args,
            "-w",
            str(settings.workspace),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("BIRTHRIGHT_")}
        | {"COLUMNS": "200"},
    )


def test_cli_checkpoint_verify_list(
    chain: sessionmaker[Session], engine: Engine, settings: Settings
) -> None:
    write_settings_file(settings, ("database_url",))

    signed = run_cli(settings, "checkpoint")
    assert signed.returncode == 0, signed.stderr
    assert f"signed checkpoint seq {HEAD}" in signed.stdout

    intact = run_cli(settings, "verify")
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert f"rows checked: {HEAD}" in intact.stdout
    assert "checkpoints verified: 2" in intact.stdout
    assert "audit chain intact" in intact.stdout

    listed = run_cli(settings, "list", "--outcome", "refused", "--limit", "3")
    assert listed.returncode == 0, listed.stderr
    assert "BRS-00000024" in listed.stdout
    assert "BRS-00000023" not in listed.stdout

    _update_detail(engine)
    broken = run_cli(settings, "verify")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "audit chain BROKEN at seq 7: audit.row_edited" in broken.stdout


def test_list_events_filters(chain: sessionmaker[Session]) -> None:
    refused = list_events(chain, limit=100, outcome="refused")
    assert [r.seq for r in refused] == [24, 20, 16, 12, 8, 4]
    assert list_events(chain, limit=2, offset=1)[0].seq == HEAD - 1
    assert list_events(chain, limit=5, event="station.registered") == []
