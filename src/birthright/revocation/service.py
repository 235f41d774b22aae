"""Revocation use cases: revoke or hold one unit, preview and execute a targeted recall,
publish the CRL and answer status questions. Pure: ports in, explicit clock, no I/O of its own.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Protocol

from birthright.audit.events import AuditEvent
from birthright.errors import ConflictError, InputError, NotFoundError
from birthright.revocation.events import EventTx, emit_entitlements, emit_recall, unit_data
from birthright.revocation.model import (
    CertStatus,
    CrlState,
    DeviceState,
    Match,
    PublishedCrl,
    Reason,
    Recall,
    RecallPreview,
    RecallResult,
    Revocation,
    RevokedEntry,
    Selection,
    matched_digest,
)

log = logging.getLogger(__name__)

SAMPLE_SIZE = 10


class RevocationTx(EventTx, Protocol):
    """One database transaction of the revocation use cases."""

    def device(self, serial: str) -> DeviceState | None:
        """The unit, locked against concurrent status changes."""

    def revocation(self, cert_serial: str) -> Revocation | None: ...

    def put_revocation(self, revocation: Revocation) -> None:
        """Insert, or replace the row of the same certificate."""

    def set_status(self, serial: str, status: str) -> None: ...

    def match(self, selection: Selection, *, cutoff: int | None, sample: int) -> Match:
        """Active units the selection matches (device row id <= ``cutoff`` when given)."""

    def revoke_matching(
        self, selection: Selection, *, cutoff: int, reason: Reason, recall_id: str, now: datetime
    ) -> int:
        """Revoke every active match up to ``cutoff`` in set-based statements; the count."""

    def add_recall(self, recall: Recall) -> None: ...

    def recall_for_token(self, token_hash: str) -> Recall | None:
        """The recall, locked."""

    def mark_executed(self, recall_id: str, now: datetime) -> None: ...

    def crl_state(self) -> CrlState:
        """The CRL state row, locked: one publisher at a time."""

    def crl_entries(self) -> Iterator[RevokedEntry]:
        """Every revocation in force, streamed (a fleet's CRL has millions of entries)."""

    def save_crl(self, crl: PublishedCrl) -> None: ...

    def crl_changed(self) -> None: ...

    def audit(self, event: AuditEvent, now: datetime) -> None: ...


class RevocationStore(Protocol):
    def transaction(self) -> AbstractContextManager[RevocationTx]: ...

    def cert_status(self, cert_serial: str) -> CertStatus:
        """Read-only status of one certificate serial (lowercase hex)."""

    def crl_state(self) -> CrlState:
        """Read-only, unlocked look at the CRL state row."""


class CaSigner(Protocol):
    """The issuing CA, as far as publication needs it."""

    def sign_crl(
        self,
        revocations: Iterable[RevokedEntry],
        number: int,
        this_update: datetime,
        next_update: datetime,
    ) -> bytes:
        """A full CRL (DER)."""

    def answer_ocsp(
        self, request_der: bytes, status_of: Callable[[int], CertStatus], now: datetime
    ) -> bytes:
        """A signed OCSP response (DER), or an unsuccessful one for a bad request."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class RevocationService:
    def __init__(
        self,
        *,
        store: RevocationStore,
        signer: CaSigner,
        clock: Callable[[], datetime],
        recall_ttl: timedelta = timedelta(hours=1),
        crl_lifetime: timedelta = timedelta(days=1),
        crl_refresh: timedelta = timedelta(hours=6),
    ) -> None:
        self._store = store
        self._signer = signer
        self._clock = clock
        self._recall_ttl = recall_ttl
        self._crl_lifetime = crl_lifetime
        self._crl_refresh = crl_refresh

    # -- one unit ---------------------------------------------------------------------------

    def revoke(self, serial: str, reason: Reason) -> Revocation:
        """Revoke (or hold) one unit. A held unit may be revoked for good; nothing else twice."""
        now = self._clock()
        with self._store.transaction() as tx:
            device = _known(tx, serial)
            if device.status == "revoked" or (device.status == "on_hold" and not reason.final):
                raise ConflictError(
                    f"unit {serial} is already {device.status.replace('_', ' ')}",
                    code="already_revoked",
                )
            revocation = Revocation(device.cert_serial, serial, now, reason)
            tx.put_revocation(revocation)
            tx.set_status(serial, reason.device_status)
            tx.crl_changed()
            tx.audit(
                AuditEvent(
                    event="device.revoked" if reason.final else "device.held",
                    outcome="ok",
                    serial=serial,
                    detail={
                        "reason": reason.value,
                        "cert_serial": device.cert_serial,
                        "previous": device.status,
                    },
                ),
                now,
            )
            event = "device.revoked" if reason.final else "device.held"
            tx.emit(event, unit_data(revocation, device.status), now)
            emit_entitlements(
                tx, "entitlement.suspended", event, tx.entitlements(serial=serial), now
            )
        log.info("unit revoked serial=%s reason=%s", serial, reason.value)
        return revocation

    def release(self, serial: str) -> DeviceState:
        """Lift a certificateHold; a final revocation stays (``revocation_final``)."""
        now = self._clock()
        with self._store.transaction() as tx:
            device = _known(tx, serial)
            current = tx.revocation(device.cert_serial)
            if device.status == "active" or current is None or not current.in_force:
                raise ConflictError(f"unit {serial} is not revoked", code="not_revoked")
            if current.reason.final:
                raise ConflictError(
                    f"unit {serial} is revoked for good ({current.reason.value}); "
                    "only a certificateHold can be released",
                    code="revocation_final",
                )
            tx.put_revocation(
                Revocation(
                    current.cert_serial,
                    current.serial,
                    current.revoked_at,
                    current.reason,
                    current.recall_id,
                    released_at=now,
                )
            )
            tx.set_status(serial, "active")
            tx.crl_changed()
            tx.audit(
                AuditEvent(
                    event="device.released",
                    outcome="ok",
                    serial=serial,
                    detail={"cert_serial": device.cert_serial, "held_since": current.revoked_at},
                ),
                now,
            )
            data = {"serial": serial, "cert_serial": device.cert_serial, "status": "active"}
            tx.emit("device.released", data, now)
            held = tx.entitlements(serial=serial)
            emit_entitlements(tx, "entitlement.resumed", "device.released", held, now)
        return DeviceState(device.serial, device.cert_serial, "active")

    def status(self, serial: str) -> tuple[DeviceState, Revocation | None]:
        with self._store.transaction() as tx:
            device = _known(tx, serial)
            current = tx.revocation(device.cert_serial)
            return device, current if current is not None and current.in_force else None

    # -- targeted recall ------------------------------------------------------------------

    def preview(self, selection: Selection, reason: Reason) -> RecallPreview:
        """Count and sample what ``selection`` matches now; the token binds exactly that set."""
        now = self._clock()
        token = secrets.token_urlsafe(24)
        recall_id = f"RC-{secrets.token_hex(6)}"
        with self._store.transaction() as tx:
            match = tx.match(selection, cutoff=None, sample=SAMPLE_SIZE)
            if not match.cert_serials:
                raise InputError("the selection matches no active unit", code="recall_empty")
            recall = Recall(
                recall_id=recall_id,
                token_hash=token_hash(token),
                selection=selection,
                reason=reason,
                count=len(match.cert_serials),
                matched_digest=matched_digest(match.cert_serials),
                device_id_cutoff=match.cutoff,
                created_at=now,
                expires_at=now + self._recall_ttl,
            )
            tx.add_recall(recall)
            tx.audit(
                AuditEvent(
                    event="recall.previewed",
                    outcome="ok",
                    detail={
                        "recall_id": recall_id,
                        "selection": selection.as_dict(),
                        "reason": reason.value,
                        "count": recall.count,
                    },
                ),
                now,
            )
        return RecallPreview(
            recall_id, token, recall.count, match.sample, selection, reason, recall.expires_at
        )

    def execute(self, token: str) -> RecallResult:
        """Revoke exactly the previewed set, in one transaction with one audit record."""
        now = self._clock()
        with self._store.transaction() as tx:
            recall = tx.recall_for_token(token_hash(token))
            if recall is None:
                raise NotFoundError("no recall has this token", code="recall_unknown")
            if recall.executed_at is not None:
                raise ConflictError(
                    f"recall {recall.recall_id} was already executed", code="recall_executed"
                )
            if now >= recall.expires_at:
                raise ConflictError(
                    f"recall {recall.recall_id} preview expired: preview again",
                    code="recall_expired",
                )
            current = tx.match(recall.selection, cutoff=recall.device_id_cutoff, sample=0)
            if matched_digest(current.cert_serials) != recall.matched_digest:
                raise _stale(recall)
            revoked = tx.revoke_matching(
                recall.selection,
                cutoff=recall.device_id_cutoff,
                reason=recall.reason,
                recall_id=recall.recall_id,
                now=now,
            )
            if revoked != recall.count:
                raise _stale(recall)  # a concurrent change: the transaction rolls back
            tx.mark_executed(recall.recall_id, now)
            tx.crl_changed()
            tx.audit(
                AuditEvent(
                    event="recall.executed",
                    outcome="ok",
                    detail={
                        "recall_id": recall.recall_id,
                        "selection": recall.selection.as_dict(),
                        "reason": recall.reason.value,
                        "count": revoked,
                        "matched_digest": recall.matched_digest,
                    },
                ),
                now,
            )
            emit_recall(tx, recall, revoked, now)
        log.info("recall executed recall_id=%s count=%d", recall.recall_id, revoked)
        return RecallResult(recall.recall_id, revoked, recall.reason)

    # -- publication ----------------------------------------------------------------------

    def crl(self) -> PublishedCrl:
        """The current CRL: the cached one unless revocations changed or it is due a refresh.

        Readers of a fresh CRL take no lock; one publisher at a time signs a new one.
        """
        now = self._clock()
        fresh = self._fresh(self._store.crl_state(), now)
        if fresh is not None:
            return fresh
        with self._store.transaction() as tx:
            state = tx.crl_state()
            fresh = self._fresh(state, now)
            if fresh is not None:
                return fresh  # another publisher signed it while we waited for the lock
            number = state.number + 1
            this_update = now.replace(microsecond=0)
            next_update = this_update + self._crl_lifetime
            der = self._signer.sign_crl(tx.crl_entries(), number, this_update, next_update)
            crl = PublishedCrl(der, number, this_update, next_update)
            tx.save_crl(crl)
        log.info("CRL signed number=%d", number)
        return crl

    def _fresh(self, state: CrlState, now: datetime) -> PublishedCrl | None:
        cached = state.cached
        if cached is None or state.dirty or now >= cached.this_update + self._crl_refresh:
            return None
        return cached

    def cert_status(self, cert_serial: int) -> CertStatus:
        """Good, revoked or unknown, for OCSP."""
        return self._store.cert_status(format(cert_serial, "x"))

    def ocsp(self, request_der: bytes) -> bytes:
        """The signed OCSP answer to ``request_der`` (DER in, DER out, never an exception)."""
        return self._signer.answer_ocsp(request_der, self.cert_status, self._clock())


def _known(tx: RevocationTx, serial: str) -> DeviceState:
    device = tx.device(serial)
    if device is None:
        raise NotFoundError(f"no enrolled device has serial {serial!r}", code="device_unknown")
    return device


def _stale(recall: Recall) -> ConflictError:
    return ConflictError(
        f"the units matching recall {recall.recall_id} changed since the preview: preview again",
        code="recall_stale",
    )
