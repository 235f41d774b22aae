"""Per-product genuine-SE policy, and how each device's key was proven.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "product_policies",
        sa.Column("product", sa.String(length=64), nullable=False),
        sa.Column("require_genuine_se", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("product", name=op.f("pk_product_policies")),
    )
    with op.batch_alter_table("devices") as batch_op:
        batch_op.add_column(sa.Column("se_proof", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch_op:
        batch_op.drop_column("se_proof")
    op.drop_table("product_policies")
