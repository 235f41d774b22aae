"""Each unit's anti-rollback floor: the highest firmware security version it passed with.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("device_firmware") as batch_op:
        batch_op.add_column(sa.Column("security_version_high", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("device_firmware") as batch_op:
        batch_op.drop_column("security_version_high")
