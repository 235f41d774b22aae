"""Claim, transfer and query entitlements. A claim needs a fresh device-auth token: a serial
read off a label is not enough, the unit's secure element must sign for it. A transfer needs
the owner's one-time transfer secret, handed out at the claim and replaced by each transfer
(ADR 0012): naming the owner is not enough."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from birthright.audit.events import AuditEvent
from birthright.deviceauth.service import DeviceSession
from birthright.entitlements.model import Entitlement, Terms, check_owner
from birthright.errors import ConflictError, InputError, NotFoundError, TrustError

TRANSFER_SECRET_PREFIX = "ets_"  # noqa: S105 - a prefix, not a secret


class EntitlementExists(ConflictError):
    code = "entitlement_exists"


class NotOwner(TrustError):
    code = "entitlement_not_owner"
    http_status = 403


class EntitlementStore(Protocol):
    def add(
        self, serial: str, terms: Terms, owner: str, secret_hash: str, now: datetime
    ) -> Entitlement:
        """Insert, with its audit record, in one transaction; ``EntitlementExists`` if taken."""
        ...

    def transfer(self, request: TransferRequest, new_secret_hash: str, now: datetime) -> bool:
        """Move ownership and replace the secret, atomically and audited, if ``from_owner``
        owns it, ``secret_hash`` matches and the device is active; False otherwise."""
        ...

    def find(
        self, *, serial: str | None, owner: str | None, plan: str | None, limit: int
    ) -> list[Entitlement]: ...


class AuditSink(Protocol):
    def record(self, event: AuditEvent, now: datetime) -> None: ...


#: Authenticates a device from its token and chain (``DeviceAuthService.authenticate``).
DeviceAuthenticator = Callable[..., DeviceSession]


@dataclass(frozen=True)
class TransferRequest:
    serial: str
    plan: str
    from_owner: str
    to_owner: str
    #: SHA-256 (hex) of the transfer secret presented.
    secret_hash: str


@dataclass(frozen=True)
class Granted:
    """An entitlement and its owner's new transfer secret (shown once, stored hashed)."""

    entitlement: Entitlement
    transfer_secret: str


def new_secret() -> tuple[str, str]:
    """A transfer secret and its hash: 256 random bits, so a plain SHA-256 suffices."""
    secret = TRANSFER_SECRET_PREFIX + secrets.token_urlsafe(32)
    return secret, secret_hash(secret)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


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

    def claim(self, request: ClaimRequest, *, token: bytes, chain: Sequence[bytes]) -> Granted:
        """Bind ``request.terms`` to the serial the device proves it is (refusals audited)."""
        check_owner(request.owner)
        session = self._authenticate(token=token, chain=chain)
        now = self._clock()
        if session.serial != request.serial:
            self._refuse("entitlement.claim", "entitlement_wrong_device", request.serial, now)
            raise TrustError(
                "the token was signed by another device", code="entitlement_wrong_device"
            )
        secret, hashed = new_secret()
        try:
            made = self._store.add(request.serial, request.terms, request.owner, hashed, now)
        except EntitlementExists:
            self._refuse("entitlement.claim", EntitlementExists.code, request.serial, now)
            raise
        return Granted(made, secret)

    def transfer(
        self, serial: str, plan: str, *, from_owner: str, to_owner: str, transfer_secret: str
    ) -> Granted:
        """Hand it to ``to_owner``, who gets a fresh secret; the presented one is spent."""
        check_owner(to_owner)
        now = self._clock()
        request = TransferRequest(serial, plan, from_owner, to_owner, secret_hash(transfer_secret))
        secret, hashed = new_secret()
        if self._store.transfer(request, hashed, now):
            [moved] = self._store.find(serial=serial, owner=to_owner, plan=plan, limit=1)
            return Granted(moved, secret)
        exists = self._store.find(serial=serial, owner=None, plan=plan, limit=1)
        if not exists:
            self._refuse("entitlement.transfer", "entitlement_unknown", serial, now)
            raise NotFoundError(f"{serial} has no {plan!r} entitlement", code="entitlement_unknown")
        if exists[0].device_status != "active":
            self._refuse("entitlement.transfer", "device_revoked", serial, now)
            raise TrustError(
                f"the device is {exists[0].device_status}: its entitlements cannot change hands",
                code="device_revoked",
            )
        self._refuse("entitlement.transfer", NotOwner.code, serial, now)
        raise NotOwner("only the current owner, with its transfer secret, may transfer this")

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
