"""The fleet events of the revocation use cases (ADR 0012): what each change tells relying
services, written to the outbox in the change's own transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from birthright.events.model import chunks
from birthright.revocation.model import Recall, Revocation


class EventTx(Protocol):
    def emit(self, event_type: str, data: dict[str, Any], now: datetime) -> None:
        """Put a fleet event in the outbox, in this transaction."""

    def entitlements(
        self, *, serial: str | None = None, recall_id: str | None = None
    ) -> list[dict[str, str]]:
        """The entitlements (serial, plan, kind, owner) of one unit or of a recall's units."""

    def recalled_serials(self, recall_id: str) -> list[str]: ...


def unit_data(revocation: Revocation, previous: str) -> dict[str, Any]:
    return {
        "serial": revocation.serial,
        "cert_serial": revocation.cert_serial,
        "reason": revocation.reason.value,
        "status": revocation.reason.device_status,
        "previous_status": previous,
        "revoked_at": revocation.revoked_at.isoformat(),
    }


def emit_recall(tx: EventTx, recall: Recall, revoked: int, now: datetime) -> None:
    """One ``recall.executed`` event per chunk of serials, then the suspensions."""
    for part, parts, serials in chunks(tx.recalled_serials(recall.recall_id)):
        data = {
            "recall_id": recall.recall_id,
            "reason": recall.reason.value,
            "count": revoked,
            "part": part,
            "parts": parts,
            "serials": list(serials),
        }
        tx.emit("recall.executed", data, now)
    held = tx.entitlements(recall_id=recall.recall_id)
    emit_entitlements(tx, "entitlement.suspended", "recall.executed", held, now, recall.recall_id)


def emit_entitlements(
    tx: EventTx,
    event_type: str,
    cause: str,
    entitlements: list[dict[str, str]],
    now: datetime,
    recall_id: str | None = None,
) -> None:
    """Entitlements follow their device's status: one event per chunk of those affected."""
    if not entitlements:
        return
    for part, parts, chunk in chunks(entitlements):
        data: dict[str, Any] = {"cause": cause, "part": part, "parts": parts}
        data["entitlements"] = list(chunk)
        if recall_id is not None:
            data["recall_id"] = recall_id
        tx.emit(event_type, data, now)
