"""Per-product enrollment policy (genuine-SE proof required or not), changed by operators."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from birthright.audit.events import AuditEvent
from birthright.db.models import ProductPolicyRow
from birthright.db.repository import _utc, append_audit, unit_of_work
from birthright.enrollment.model import ProductPolicy
from birthright.errors import InputError

PRODUCT = re.compile(r"^[A-Za-z0-9._ -]{1,64}$")


class SqlProductPolicies:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def set_require_genuine_se(
        self, product: str, required: bool, *, now: datetime
    ) -> tuple[ProductPolicy, bool]:
        """Require (or stop requiring) genuine-SE proof for ``product``; (policy, changed).
        A change is audited in the same transaction."""
        if not PRODUCT.match(product):
            raise InputError(f"not a product name: {product!r}", code="bad_product")
        with unit_of_work(self._sessions) as s:
            row = s.get(ProductPolicyRow, product, with_for_update=True)
            previous = bool(row and row.require_genuine_se)
            if row is None:
                row = ProductPolicyRow(product=product, require_genuine_se=required, updated_at=now)
                s.add(row)
            elif previous != required:
                row.require_genuine_se, row.updated_at = required, now
            changed = previous != required
            if changed:
                append_audit(
                    s,
                    AuditEvent(
                        event="product.policy",
                        outcome="ok",
                        detail={"product": product, "require_genuine_se": required},
                    ),
                    now,
                )
            s.flush()
            return _policy(row), changed

    def get(self, product: str) -> ProductPolicy:
        with self._sessions() as s:
            row = s.get(ProductPolicyRow, product)
            return _policy(row) if row else ProductPolicy(product, require_genuine_se=False)

    def list(self) -> list[ProductPolicy]:
        with self._sessions() as s:
            rows = s.execute(select(ProductPolicyRow).order_by(ProductPolicyRow.product))
            return [_policy(r) for r in rows.scalars()]


def _policy(row: ProductPolicyRow) -> ProductPolicy:
    return ProductPolicy(
        product=row.product,
        require_genuine_se=bool(row.require_genuine_se),
        updated_at=_utc(row.updated_at),
    )


def audit_operator_action(
    sessions: sessionmaker[Session], event: str, detail: dict[str, str], *, now: datetime
) -> None:
    """Record an operator's trust decision made outside the database (e.g. trusting an SE
    vendor root in the workspace) in the audit chain."""
    with unit_of_work(sessions) as s:
        append_audit(s, AuditEvent(event=event, outcome="ok", detail=detail), now)
