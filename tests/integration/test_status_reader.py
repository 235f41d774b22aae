"""The OCSP status read on real SQLite and PostgreSQL: good, revoked, released, unknown, and a
database that cannot answer is a transient error (the responder says ``tryLater``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert

from birthright.db.engine import make_engine
from birthright.db.models import DeviceRow, RevocationRow, StationRow
from birthright.db.status_reader import SqlStatusReader
from birthright.errors import TransientError
from birthright.revocation.model import CertStatus, Reason

AT = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)


def seed(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(StationRow),
            [{"station_id": "st", "site": "s", "line": "l", "status": "active",
              "created_at": AT, "last_counter": 0}],
        )  # fmt: skip
        conn.execute(
            insert(DeviceRow),
            [
                {
                    "serial": f"BR{i}",
                    "chip_id": f"chip-{i}",
                    "key_fingerprint": f"{i:064x}",
                    "public_key_der": b"\x30\x00",
                    "cert_serial": cert,
                    "cert_der": b"\x30\x00",
                    "product": "P",
                    "station_id": "st",
                    "work_order_id": None,
                    "status": status,
                    "enrolled_at": AT,
                }
                for i, (cert, status) in enumerate(
                    [("a1", "active"), ("b2", "revoked"), ("c3", "active"), ("d4", "on_hold")]
                )
            ],
        )
        conn.execute(
            insert(RevocationRow),
            [
                {"cert_serial": "b2", "serial": "BR1", "revoked_at": AT,
                 "reason": "keyCompromise", "recall_id": None, "released_at": None},
                {"cert_serial": "c3", "serial": "BR2", "revoked_at": AT,
                 "reason": "certificateHold", "recall_id": None, "released_at": AT},
                {"cert_serial": "d4", "serial": "BR3", "revoked_at": AT,
                 "reason": "certificateHold", "recall_id": None, "released_at": None},
            ],
        )  # fmt: skip
    engine.dispose()


@pytest.mark.parametrize(
    ("cert_serial", "expected"),
    [
        ("a1", CertStatus("good")),
        ("b2", CertStatus("revoked", AT, Reason.keyCompromise)),
        ("c3", CertStatus("good")),
        ("d4", CertStatus("revoked", AT, Reason.certificateHold)),
        ("ee", CertStatus("unknown")),
    ],
    ids=["active", "revoked", "released-hold", "on-hold", "never-issued"],
)
def test_status_of_one_certificate(
    database_url: str, cert_serial: str, expected: CertStatus
) -> None:
    seed(database_url)
    engine = make_engine(database_url)
    reader = SqlStatusReader(engine)
    try:
        got = reader(cert_serial)
        assert got == expected
        if got.revoked_at is not None:
            assert got.revoked_at.tzinfo is not None
        assert reader(cert_serial) == expected  # the kept connection answers again
    finally:
        reader.close()
        engine.dispose()


def test_a_database_that_cannot_answer_is_transient(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'missing' / 'birthright.db'}")
    reader = SqlStatusReader(engine)
    with pytest.raises(TransientError):
        reader("a1")
    engine.dispose()
