"""risk history: attempts withdrawn before any charge

`risk_assessments.withdrawn_at`: set when a checkout attempt ended before any
charge because the shop failed it (its database refused the order, say); the
velocity and usual-amount rules leave such attempts out. An index on
`order_reference`, by which an attempt is withdrawn.
Additive only: the previous release keeps running against this schema (it
ignores the column, so it still counts withdrawn attempts until it is replaced).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 01:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("risk_assessments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_risk_assessments_reference", ["order_reference"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("risk_assessments", schema=None) as batch_op:
        batch_op.drop_index("ix_risk_assessments_reference")
        batch_op.drop_column("withdrawn_at")
