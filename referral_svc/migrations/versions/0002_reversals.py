"""Reversals: a conversion whose deal left won is kept and marked; reversals
that arrive before the conversion are remembered in lead_reversals.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("referral_conversions") as batch:
        batch.add_column(sa.Column("reversed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("reversal_reason", sa.Text, nullable=True))
    op.create_table(
        "lead_reversals",
        sa.Column("account_id", sa.BigInteger, primary_key=True),
        sa.Column("lead_id", sa.BigInteger, primary_key=True),
        sa.Column("reversed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("lead_reversals")
    with op.batch_alter_table("referral_conversions") as batch:
        batch.drop_column("reversal_reason")
        batch.drop_column("reversed_at")
