"""Revocation and targeted recall: revocations, recalls, the CRL state row.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "revocations",
        sa.Column("cert_serial", sa.String(length=64), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("recall_id", sa.String(length=64), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("cert_serial", name=op.f("pk_revocations")),
    )
    with op.batch_alter_table("revocations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_revocations_serial"), ["serial"], unique=False)
        batch_op.create_index(batch_op.f("ix_revocations_recall_id"), ["recall_id"], unique=False)
    op.create_table(
        "recalls",
        sa.Column("recall_id", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("selection", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("matched_digest", sa.String(length=64), nullable=False),
        sa.Column("device_id_cutoff", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("executed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("recall_id", name=op.f("pk_recalls")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_recalls_token_hash")),
    )
    op.create_table(
        "crl_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crl_number", sa.BigInteger(), nullable=False),
        sa.Column("dirty", sa.Boolean(), nullable=False),
        sa.Column("last_generated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_update", sa.DateTime(timezone=True), nullable=True),
        sa.Column("crl_der", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crl_state")),
    )
    # The one state row exists from the start, so concurrent first publications cannot race.
    op.execute(
        sa.text("INSERT INTO crl_state (id, crl_number, dirty) VALUES (1, 0, :dirty)").bindparams(
            dirty=True
        )
    )


def downgrade() -> None:
    op.drop_table("crl_state")
    op.drop_table("recalls")
    with op.batch_alter_table("revocations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_revocations_recall_id"))
        batch_op.drop_index(batch_op.f("ix_revocations_serial"))
    op.drop_table("revocations")
