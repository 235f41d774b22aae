"""Event subscriptions, the event outbox and its deliveries; entitlement transfer secrets
(ADR 0012).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_subscriptions",
        sa.Column("subscription_id", sa.String(32), primary_key=True),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("event_types", sa.Text(), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(40), primary_key=True),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
    )
    op.create_table(
        "event_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(40), sa.ForeignKey("events.event_id"), nullable=False),
        sa.Column(
            "subscription_id",
            sa.String(32),
            sa.ForeignKey("event_subscriptions.subscription_id"),
            nullable=False,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(200), nullable=True),
    )
    op.create_index("ix_event_deliveries_due", "event_deliveries", ["status", "next_attempt_at"])
    op.create_index(
        "ix_event_deliveries_subscription", "event_deliveries", ["subscription_id", "id"]
    )
    with op.batch_alter_table("entitlements") as batch:
        batch.add_column(sa.Column("transfer_secret_hash", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("entitlements") as batch:
        batch.drop_column("transfer_secret_hash")
    op.drop_index("ix_event_deliveries_subscription", "event_deliveries")
    op.drop_index("ix_event_deliveries_due", "event_deliveries")
    op.drop_table("event_deliveries")
    op.drop_table("events")
    op.drop_table("event_subscriptions")
