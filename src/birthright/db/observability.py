"""Cheap reads for metrics and readiness: open quotas, the schema's revision."""

from __future__ import annotations

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from birthright.db.models import WorkOrderRow
from birthright.observability.model import QuotaUse

#: More open work orders than this are not exported one by one (label cardinality).
MAX_ORDERS = 500


def open_quota_use(sessions: sessionmaker[Session]) -> list[QuotaUse]:
    """Quantity and minted of every open work order (one indexed read)."""
    query = (
        select(
            WorkOrderRow.work_order_id,
            WorkOrderRow.product,
            WorkOrderRow.quantity,
            WorkOrderRow.minted,
        )
        .where(WorkOrderRow.status == "open")
        .order_by(WorkOrderRow.work_order_id)
        .limit(MAX_ORDERS)
    )
    with sessions() as session:
        return [QuotaUse(*row) for row in session.execute(query).all()]


def ping(engine: Engine) -> None:
    """One round trip to the database (raises SQLAlchemy's errors when it is away)."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
