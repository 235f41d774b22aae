"""Verdicts with findings, not booleans."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Status = Literal["pass", "fail", "indeterminate"]
#: EAR (draft-ietf-rats-ear) appraisal status of the whole result.
EarStatus = Literal["affirming", "warning", "contraindicated"]


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
    nonce: str | None = None
    #: The backend's signed result (COSE_Sign1), set once the verifier has signed it.
    token: bytes | None = None
    #: (version, image SHA-256) the unit reported, kept only when signature and chain held.
    firmware: tuple[str, bytes] | None = None
    #: The security version of that firmware when it passed appraisal: raises the unit's
    #: anti-rollback floor.
    security_version: int | None = None

    @property
    def verdict(self) -> Status:
        statuses = {f.status for f in self.findings}
        if "fail" in statuses:
            return "fail"
        if "indeterminate" in statuses or not statuses:
            return "indeterminate"
        return "pass"

    @property
    def status(self) -> EarStatus:
        """Affirming only when identity *and* firmware were appraised and passed."""
        verdict = self.verdict
        if verdict == "fail":
            return "contraindicated"
        if verdict == "pass" and any(f.id == "firmware.allowed" for f in self.findings):
            return "affirming"
        return "warning"

    def as_dict(self) -> dict[str, object]:
        return {
            "serial": self.serial,
            "verdict": self.verdict,
            "status": self.status,
            "checks": [
                {"check": f.check, "status": f.status, "id": f.id, "message": f.message}
                for f in self.findings
            ],
        }
