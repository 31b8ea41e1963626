"""order integrity: refunds outside the write transaction, checkout replays, job leases,
webhook de-duplication

`orders.refund_to` (the status a `refund_pending` order takes once the provider
confirms the refund), `orders.checkout_outcome` (the refusal a replay repeats),
`job_leases` (one reconciler at a time across processes and hosts) and
`webhook_events` (partner events already applied, for the replay window).
Additive only: the previous release keeps running against this schema.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 20:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refund_to", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("checkout_outcome", sa.JSON(), nullable=True))
    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_job_leases")),
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.String(length=160), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
    )
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_events_received", ["received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_events_received")
    op.drop_table("webhook_events")
    op.drop_table("job_leases")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("checkout_outcome")
        batch_op.drop_column("refund_to")
