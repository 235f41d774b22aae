"""Verdicts with findings, not booleans."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Status = Literal["pass", "fail", "indeterminate"]


@dataclass(frozen=True)
class Finding:
    """One check's outcome; ``id`` is a stable dotted identifier (``nonce.replayed``)."""

    check: str
    status: Status
    id: str
    message: str


@dataclass(frozen=True)
class AttestationResult:
    serial: str
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def verdict(self) -> Status:
        statuses = {f.status for f in self.findings}
        if "fail" in statuses:
            return "fail"
        if "indeterminate" in statuses or not statuses:
            return "indeterminate"
        return "pass"

    def as_dict(self) -> dict[str, object]:
        return {
            "serial": self.serial,
            "verdict": self.verdict,
            "checks": [
                {"check": f.check, "status": f.status, "id": f.id, "message": f.message}
                for f in self.findings
            ],
        }
