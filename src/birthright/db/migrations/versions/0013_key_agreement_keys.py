"""Each device's key-agreement key, vouched for by its identity key (ADR 0010).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_agreement_keys",
        sa.Column("serial", sa.String(64), sa.ForeignKey("devices.serial"), primary_key=True),
        sa.Column("public_key_der", sa.LargeBinary(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("key_agreement_keys")
