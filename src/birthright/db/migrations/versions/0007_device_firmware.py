"""The firmware each unit last reported, for recalls by firmware version.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_firmware",
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("measurement", sa.LargeBinary(), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_device_firmware")),
    )
    with op.batch_alter_table("device_firmware") as batch_op:
        batch_op.create_index(batch_op.f("ix_device_firmware_version"), ["version"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("device_firmware") as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_firmware_version"))
    op.drop_table("device_firmware")
