"""The station's local journal: every unit it touched and the last step each one reached.

A plain SQLite file next to the station, in WAL mode, one transaction per step: after a crash
of the station process the journal says exactly how far each unit got, and the next run
finishes it. Commits are not fsync'd one by one (``synchronous=NORMAL``): a commit survives
the process being killed, and only a power loss can take back the last steps. The journal is
not what keeps a unit whole: the chip keeps its key and chain, and the backend keeps one
serial per chip and answers a repeated enrollment with the same certificate, so a unit whose
last steps were lost is finished the same way on the next run (``action == "resumed"``).
"""

from __future__ import annotations

import os
import signal
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

STEPS = ("started", "reserved", "key_generated", "enrolled", "stored", "done", "failed")

SCHEMA = """
CREATE TABLE IF NOT EXISTS units (
    chip_id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    serial TEXT,
    step TEXT NOT NULL,
    cert_serial TEXT,
    code TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chip_id TEXT NOT NULL,
    step TEXT NOT NULL,
    detail TEXT,
    at TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class FaultPlan:
    """Fault injection for crash tests: kill this process (SIGKILL) when unit number
    ``unit`` (0-based, in this run) reaches ``step``. Parsed from ``STEP:UNIT``."""

    step: str
    unit: int

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        step, _, unit = spec.partition(":")
        if step not in STEPS or not unit.isdigit():
            raise ValueError(f"fault plan must be STEP:UNIT with STEP in {STEPS}")
        return cls(step, int(unit))


@dataclass(frozen=True)
class JournalEntry:
    chip_id: str
    label: str
    serial: str | None
    step: str
    cert_serial: str | None
    code: str | None
    attempts: int


class Journal:
    def __init__(self, path: Path, *, fault: FaultPlan | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._fault = fault
        self._units_started = -1

    def close(self) -> None:
        self._db.close()

    def begin(self, chip_id: str, label: str) -> None:
        self._units_started += 1
        now = _now()
        with self._db:  # one transaction for the unit row and its event
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO units (chip_id, label, step, attempts, updated_at) "
                "VALUES (?, ?, 'started', 1, ?) "
                "ON CONFLICT (chip_id) DO UPDATE SET attempts = attempts + 1, updated_at = ?, "
                "step = CASE WHEN step = 'done' THEN 'done' ELSE 'started' END, code = NULL",
                (chip_id, label, now, now),
            )
            self._event(chip_id, "started", label)

    def mark(
        self,
        chip_id: str,
        step: str,
        *,
        serial: str | None = None,
        cert_serial: str | None = None,
        code: str | None = None,
    ) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "UPDATE units SET step = ?, serial = COALESCE(?, serial), "
                "cert_serial = COALESCE(?, cert_serial), code = ?, updated_at = ? "
                "WHERE chip_id = ?",
                (step, serial, cert_serial, code, _now(), chip_id),
            )
            self._event(chip_id, step, code or serial or cert_serial)
        fault = self._fault
        if fault is not None and fault.step == step and fault.unit == self._units_started:
            os.kill(os.getpid(), signal.SIGKILL)

    def _event(self, chip_id: str, step: str, detail: str | None) -> None:
        self._db.execute(
            "INSERT INTO events (chip_id, step, detail, at) VALUES (?, ?, ?, ?)",
            (chip_id, step, detail, _now()),
        )

    def entries(self) -> list[JournalEntry]:
        rows = self._db.execute(
            "SELECT chip_id, label, serial, step, cert_serial, code, attempts "
            "FROM units ORDER BY label"
        ).fetchall()
        return [JournalEntry(*row) for row in rows]


def _now() -> str:
    return datetime.now(UTC).isoformat()
