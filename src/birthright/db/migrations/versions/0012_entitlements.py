"""Entitlements: a warranty or subscription bound to one serial, one per (serial, plan).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "entitlements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("plan", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["serial"], ["devices.serial"], name=op.f("fk_entitlements_serial_devices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entitlements")),
        sa.UniqueConstraint("serial", "plan", name="uq_entitlements_serial_plan"),
    )
    op.create_index("ix_entitlements_owner", "entitlements", ["owner", "plan"])
    op.create_index("ix_entitlements_plan", "entitlements", ["plan"])


def downgrade() -> None:
    op.drop_index("ix_entitlements_plan", table_name="entitlements")
    op.drop_index("ix_entitlements_owner", table_name="entitlements")
    op.drop_table("entitlements")
