"""Audit events and the hash that links each to the one before it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
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
    body = json.dumps(
        [
            prev_hash,
            seq,
            at.isoformat(),
            event.event,
            event.outcome,
            event.code,
            event.station_id,
            event.serial,
            canonical_detail(event.detail),
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()
