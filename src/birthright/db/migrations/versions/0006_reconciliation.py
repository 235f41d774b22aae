"""Shipments and chip deliveries: the outside records reconciliation compares against.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shipments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("work_order_id", sa.String(length=64), nullable=False),
        sa.Column("ship_date", sa.Date(), nullable=False),
        sa.Column("carton", sa.String(length=64), nullable=False),
        sa.Column("pallet", sa.String(length=64), nullable=False),
        sa.Column("destination", sa.String(length=128), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("source_line", sa.Integer(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["work_orders.work_order_id"],
            name=op.f("fk_shipments_work_order_id_work_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipments")),
        sa.UniqueConstraint("serial", "ship_date", "carton", name="uq_shipments_unit"),
    )
    op.create_index(op.f("ix_shipments_serial"), "shipments", ["serial"])
    op.create_index(op.f("ix_shipments_work_order_id"), "shipments", ["work_order_id"])
    op.create_index(op.f("ix_shipments_ship_date"), "shipments", ["ship_date"])
    op.create_table(
        "chip_deliveries",
        sa.Column("chip_id", sa.String(length=128), nullable=False),
        sa.Column("vendor", sa.String(length=64), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chip_id", name=op.f("pk_chip_deliveries")),
    )


def downgrade() -> None:
    op.drop_table("chip_deliveries")
    op.drop_index(op.f("ix_shipments_ship_date"), table_name="shipments")
    op.drop_index(op.f("ix_shipments_work_order_id"), table_name="shipments")
    op.drop_index(op.f("ix_shipments_serial"), table_name="shipments")
    op.drop_table("shipments")
