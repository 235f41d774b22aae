"""Audit events and the hash that links each to the one before it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class AuditEvent:
    """One security-relevant fact: what happened, to whom, and with what outcome."""

    event: str
    outcome: str  # "ok" | "refused" | "alert"
    code: str | None = None
    station_id: str | None = None
    serial: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def canonical_detail(detail: dict[str, Any]) -> str:
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), default=str)


def link_hash(prev_hash: str, seq: int, at: datetime, event: AuditEvent) -> str:
    """SHA-256 over the previous link and every field of this event, canonically encoded."""
    return _digest(
        prev_hash,
        seq,
        at,
        (event.event, event.outcome, event.code, event.station_id, event.serial),
        canonical_detail(event.detail),
    )


def _digest(
    prev_hash: str,
    seq: int,
    at: datetime,
    fields: tuple[str, str, str | None, str | None, str | None],
    detail_json: str,
) -> str:
    """The one definition of a link's bytes, shared by appending and verifying."""
    body = json.dumps([prev_hash, seq, at.isoformat(), *fields, detail_json], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class AuditRecord:
    """One stored link of the chain, exactly as read back (``detail`` is the stored JSON text).

    ``at`` must be timezone-aware; it is normalised to UTC so the hash recomputes the same
    whichever database (and session time zone) it came from.
    """

    seq: int
    at: datetime
    event: str
    outcome: str
    code: str | None
    station_id: str | None
    serial: str | None
    detail: str
    prev_hash: str
    hash: str

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("AuditRecord.at must be timezone-aware")
        object.__setattr__(self, "at", self.at.astimezone(UTC))

    def computed_hash(self) -> str:
        """The hash this row must carry, recomputed from its stored fields and ``prev_hash``."""
        fields = (self.event, self.outcome, self.code, self.station_id, self.serial)
        return _digest(self.prev_hash, self.seq, self.at, fields, self.detail)
