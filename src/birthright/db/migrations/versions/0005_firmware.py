"""Firmware allow-list (signed releases) and first contact of each unit.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "firmware_releases",
        sa.Column("product", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("measurement", sa.LargeBinary(), nullable=False),
        sa.Column("security_version", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("manifest", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("block_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("product", "version", name=op.f("pk_firmware_releases")),
    )
    op.create_table(
        "device_contacts",
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("first_contact_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_device_contacts")),
    )


def downgrade() -> None:
    op.drop_table("device_contacts")
    op.drop_table("firmware_releases")
