"""Attestation evidence: what the device signs. Parsed once, strictly."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from birthright.errors import InputError

MAX_EVIDENCE_BYTES = 4096
EVIDENCE_TYPE = "birthright-evidence-v1"


class EvidenceMalformed(InputError):
    code = "evidence_malformed"


@dataclass(frozen=True)
class Evidence:
    nonce: str
    serial: str
    time: datetime


def build_evidence(*, nonce: str, serial: str, now: datetime) -> bytes:
    """The exact bytes a device signs."""
    body = {"type": EVIDENCE_TYPE, "nonce": nonce, "serial": serial, "time": now.isoformat()}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def parse_evidence(data: bytes) -> Evidence:
    if len(data) > MAX_EVIDENCE_BYTES:
        raise EvidenceMalformed(f"evidence is larger than {MAX_EVIDENCE_BYTES} bytes")
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EvidenceMalformed("evidence is not valid JSON") from e
    if not isinstance(body, dict) or set(body) != {"type", "nonce", "serial", "time"}:
        raise EvidenceMalformed("evidence must hold exactly type, nonce, serial and time")
    if body["type"] != EVIDENCE_TYPE:
        raise EvidenceMalformed(f"evidence type must be {EVIDENCE_TYPE}")
    nonce, serial, time = body["nonce"], body["serial"], body["time"]
    if not all(isinstance(v, str) and 0 < len(v) <= 128 for v in (nonce, serial, time)):
        raise EvidenceMalformed("nonce, serial and time must be short strings")
    try:
        at = datetime.fromisoformat(time)
    except ValueError as e:
        raise EvidenceMalformed("evidence time is not an ISO 8601 timestamp") from e
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return Evidence(nonce=nonce, serial=serial, time=at)
