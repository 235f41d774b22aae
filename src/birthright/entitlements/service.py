"""Claim, transfer and query entitlements. A claim needs a fresh device-auth token: a serial
read off a label is not enough, the unit's secure element must sign for it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from birthright.audit.events import AuditEvent
from birthright.deviceauth.service import DeviceSession
from birthright.entitlements.model import Entitlement, Terms, check_owner
from birthright.errors import ConflictError, InputError, NotFoundError, TrustError


class EntitlementExists(ConflictError):
    code = "entitlement_exists"


class NotOwner(TrustError):
    code = "entitlement_not_owner"
    http_status = 403


class EntitlementStore(Protocol):
    def add(self, serial: str, terms: Terms, owner: str, now: datetime) -> Entitlement:
        """Insert, with its audit record, in one transaction; ``EntitlementExists`` if taken."""
        ...

    def transfer(
        self, serial: str, plan: str, from_owner: str, to_owner: str, now: datetime
    ) -> Entitlement | None:
        """Move ownership atomically if ``from_owner`` owns it (audited); None otherwise."""
        ...

    def find(
        self, *, serial: str | None, owner: str | None, plan: str | None, limit: int
    ) -> list[Entitlement]: ...


class AuditSink(Protocol):
    def record(self, event: AuditEvent, now: datetime) -> None: ...


#: Authenticates a device from its token and chain (``DeviceAuthService.authenticate``).
DeviceAuthenticator = Callable[..., DeviceSession]


@dataclass(frozen=True)
class ClaimRequest:
    serial: str
    terms: Terms
    owner: str


class EntitlementService:
    def __init__(
        self,
        *,
        store: EntitlementStore,
        authenticate: DeviceAuthenticator,
        audit: AuditSink,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._authenticate = authenticate
        self._audit = audit
        self._clock = clock

    def claim(self, request: ClaimRequest, *, token: bytes, chain: Sequence[bytes]) -> Entitlement:
        """Bind ``request.terms`` to the serial the device proves it is (refusals audited)."""
        check_owner(request.owner)
        session = self._authenticate(token=token, chain=chain)
        now = self._clock()
        if session.serial != request.serial:
            self._refuse("entitlement.claim", "entitlement_wrong_device", request.serial, now)
            raise TrustError(
                "the token was signed by another device", code="entitlement_wrong_device"
            )
        try:
            return self._store.add(request.serial, request.terms, request.owner, now)
        except EntitlementExists:
            self._refuse("entitlement.claim", EntitlementExists.code, request.serial, now)
            raise

    def transfer(self, serial: str, plan: str, *, from_owner: str, to_owner: str) -> Entitlement:
        check_owner(to_owner)
        now = self._clock()
        moved = self._store.transfer(serial, plan, from_owner, to_owner, now)
        if moved is not None:
            return moved
        exists = self._store.find(serial=serial, owner=None, plan=plan, limit=1)
        code = NotOwner.code if exists else "entitlement_unknown"
        self._refuse("entitlement.transfer", code, serial, now)
        if exists:
            raise NotOwner("only the current owner may transfer this entitlement")
        raise NotFoundError(f"{serial} has no {plan!r} entitlement", code=code)

    def find(
        self,
        *,
        serial: str | None = None,
        owner: str | None = None,
        plan: str | None = None,
        limit: int = 100,
    ) -> list[Entitlement]:
        if serial is None and owner is None and plan is None:
            raise InputError("query by serial, owner or plan", code="entitlement_query_empty")
        return self._store.find(serial=serial, owner=owner, plan=plan, limit=limit)

    def today(self) -> datetime:
        return self._clock()

    def _refuse(self, event: str, code: str, serial: str, now: datetime) -> None:
        self._audit.record(
            AuditEvent(event=event, outcome="refused", code=code, serial=serial), now
        )
