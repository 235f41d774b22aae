"""SQLAlchemy implementation of the entitlement store."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session, sessionmaker

from birthright.audit.events import AuditEvent
from birthright.db.models import DeviceRow, EntitlementRow
from birthright.db.repository import _utc, append_audit, unit_of_work
from birthright.enrollment.ports import DuplicateRecord
from birthright.entitlements.model import Entitlement, Kind, Terms
from birthright.entitlements.service import EntitlementExists, TransferRequest


class SqlEntitlementStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def add(
        self, serial: str, terms: Terms, owner: str, secret_hash: str, now: datetime
    ) -> Entitlement:
        try:
            with unit_of_work(self._sessions) as s:
                s.add(
                    EntitlementRow(
                        serial=serial,
                        plan=terms.plan,
                        kind=terms.kind,
                        starts_on=terms.starts_on,
                        ends_on=terms.ends_on,
                        owner=owner,
                        claimed_at=now,
                        updated_at=now,
                        transfer_secret_hash=secret_hash,
                    )
                )
                s.flush()
                append_audit(s, _event("entitlement.claim", serial, terms.plan, owner=owner), now)
        except DuplicateRecord as e:
            raise EntitlementExists(f"{serial} already has a {terms.plan!r} entitlement") from e
        return Entitlement(serial, terms, owner, now, "active")

    def transfer(self, request: TransferRequest, new_secret_hash: str, now: datetime) -> bool:
        e = EntitlementRow
        active = select(DeviceRow.serial).where(
            DeviceRow.serial == request.serial, DeviceRow.status == "active"
        )
        with unit_of_work(self._sessions) as s:
            moved = s.execute(
                update(e)
                .where(
                    e.serial == request.serial,
                    e.plan == request.plan,
                    e.owner == request.from_owner,
                    e.transfer_secret_hash == request.secret_hash,
                    e.serial.in_(active),
                )
                .values(
                    owner=request.to_owner, transfer_secret_hash=new_secret_hash, updated_at=now
                )
            )
            if getattr(moved, "rowcount", 0) != 1:
                return False
            event = _event(
                "entitlement.transfer",
                request.serial,
                request.plan,
                owner=request.to_owner,
                previous=request.from_owner,
            )
            append_audit(s, event, now)
        return True

    def find(
        self, *, serial: str | None, owner: str | None, plan: str | None, limit: int
    ) -> list[Entitlement]:
        query: Select[EntitlementRow, str] = select(EntitlementRow, DeviceRow.status).join(
            DeviceRow, DeviceRow.serial == EntitlementRow.serial
        )
        if serial is not None:
            query = query.where(EntitlementRow.serial == serial)
        if owner is not None:
            query = query.where(EntitlementRow.owner == owner)
        if plan is not None:
            query = query.where(EntitlementRow.plan == plan)
        query = query.order_by(EntitlementRow.id).limit(limit)
        with self._sessions() as s:
            return [_entitlement(row, status) for row, status in s.execute(query).all()]


def _event(name: str, serial: str, plan: str, **detail: str) -> AuditEvent:
    return AuditEvent(event=name, outcome="ok", serial=serial, detail={"plan": plan, **detail})


def _entitlement(row: EntitlementRow, device_status: str) -> Entitlement:
    kind: Kind = "subscription" if row.kind == "subscription" else "warranty"
    terms = Terms(plan=row.plan, kind=kind, starts_on=row.starts_on, ends_on=row.ends_on)
    return Entitlement(row.serial, terms, row.owner, _utc(row.claimed_at), device_status)
