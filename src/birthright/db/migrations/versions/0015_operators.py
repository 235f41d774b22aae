"""Operator accounts, console sessions and operator API tokens (ADR 0013).

Revision ID: 0015
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("site", sa.String(64), nullable=True),
        sa.Column("line", sa.String(64), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    for table in ("operator_sessions", "operator_tokens"):
        extra = (
            [sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False)]
            if table == "operator_sessions"
            else [sa.Column("label", sa.String(64), nullable=False)]
        )
        op.create_table(
            table,
            sa.Column("digest", sa.String(64), primary_key=True),
            sa.Column("operator", sa.String(32), sa.ForeignKey("operators.name"), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            *extra,
        )
        op.create_index(f"ix_{table}_operator", table, ["operator"])


def downgrade() -> None:
    op.drop_table("operator_tokens")
    op.drop_table("operator_sessions")
    op.drop_table("operators")
