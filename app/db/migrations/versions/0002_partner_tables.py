"""partner tables: mail outbox, sending quota, risk history

The tables of app/partners (registered on the one `app.db.base.Base`): `mail_outbox`
and `mail_quota` (app/partners/mail/sql.py), `risk_assessments`
(app/partners/fraud/sql.py).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 08:22:01.026031
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mail_outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=998), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=50), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'sent', 'dead')", name=op.f("ck_mail_outbox_state")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_outbox")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_mail_outbox_dedupe_key")),
    )
    with op.batch_alter_table("mail_outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mail_outbox_due",
            ["next_attempt_at", "id"],
            unique=False,
            postgresql_where=sa.text("state = 'pending'"),
            sqlite_where=sa.text("state = 'pending'"),
        )

    op.create_table(
        "mail_quota",
        sa.Column("window_key", sa.String(length=40), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("window_key", name=op.f("pk_mail_quota")),
    )
    with op.batch_alter_table("mail_quota", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mail_quota_ends_at"), ["ends_at"], unique=False)

    op.create_table(
        "risk_assessments",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("order_reference", sa.String(length=100), nullable=False),
        sa.Column("customer_reference", sa.String(length=100), nullable=False),
        sa.Column("token_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("ip_address", sa.String(length=45), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("decision", sa.String(length=10), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_assessments")),
    )
    with op.batch_alter_table("risk_assessments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_risk_assessments_customer", ["customer_reference", "assessed_at"], unique=False
        )
        batch_op.create_index("ix_risk_assessments_ip", ["ip_address", "assessed_at"], unique=False)
        batch_op.create_index(
            "ix_risk_assessments_token", ["token_fingerprint", "assessed_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("risk_assessments", schema=None) as batch_op:
        batch_op.drop_index("ix_risk_assessments_token")
        batch_op.drop_index("ix_risk_assessments_ip")
        batch_op.drop_index("ix_risk_assessments_customer")

    op.drop_table("risk_assessments")
    with op.batch_alter_table("mail_quota", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mail_quota_ends_at"))

    op.drop_table("mail_quota")
    with op.batch_alter_table("mail_outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_mail_outbox_due",
            postgresql_where=sa.text("state = 'pending'"),
            sqlite_where=sa.text("state = 'pending'"),
        )

    op.drop_table("mail_outbox")
