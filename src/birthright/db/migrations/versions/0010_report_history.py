"""Report history, and covering indexes for the set-based reconciliation queries.

The daily report reads a day of enrollments (``devices`` by ``enrolled_at``, with the serial,
chip id and work order in the index so the anti-joins never touch the wide device rows) and a
day of shipments (by ship date, work order and serial; by serial for double shipments; by
work order and serial for all-time counts). The three single-column shipment indexes are
prefixes of the new ones and are dropped.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
    )
    op.create_index("ix_reports_period_format", "reports", ["period", "format", "generated_at"])
    op.create_index(
        "ix_devices_reconcile", "devices", ["enrolled_at", "work_order_id", "serial", "chip_id"]
    )
    op.drop_index("ix_shipments_serial", table_name="shipments")
    op.drop_index("ix_shipments_ship_date", table_name="shipments")
    op.create_index("ix_shipments_day", "shipments", ["ship_date", "work_order_id", "serial"])
    op.create_index("ix_shipments_by_serial", "shipments", ["serial", "ship_date", "work_order_id"])
    op.drop_index("ix_shipments_work_order_id", table_name="shipments")
    op.create_index("ix_shipments_order_serial", "shipments", ["work_order_id", "serial"])


def downgrade() -> None:
    op.drop_index("ix_shipments_order_serial", table_name="shipments")
    op.create_index("ix_shipments_work_order_id", "shipments", ["work_order_id"])
    op.drop_index("ix_shipments_by_serial", table_name="shipments")
    op.drop_index("ix_shipments_day", table_name="shipments")
    op.create_index("ix_shipments_ship_date", "shipments", ["ship_date"])
    op.create_index("ix_shipments_serial", "shipments", ["serial"])
    op.drop_index("ix_devices_reconcile", table_name="devices")
    op.drop_index("ix_reports_period_format", table_name="reports")
    op.drop_table("reports")
