"""The audit head row exists from the start, so concurrent first appends cannot race.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.execute(
        sa.text(
            "INSERT INTO audit_head (id, seq, hash) "
            "SELECT 1, 0, :genesis WHERE NOT EXISTS (SELECT 1 FROM audit_head)"
        ).bindparams(genesis=GENESIS)
    )


def downgrade() -> None:
    op.execute("DELETE FROM audit_head WHERE seq = 0")
