"""Create all_sales_tracking.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "all_sales_tracking",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("account_id", sa.BigInteger, nullable=False),
        sa.Column("lead_id", sa.BigInteger, nullable=False),
        sa.Column("targetologist", sa.String(200), nullable=False),
        sa.Column("utm_source", sa.Text, nullable=False),
        sa.Column("utm_medium", sa.Text, nullable=False),
        sa.Column("utm_campaign", sa.Text, nullable=False),
        sa.Column("utm_content", sa.Text, nullable=False),
        sa.Column("utm_term", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("deal_name", sa.Text, nullable=False),
        sa.Column("won_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("account_id", "lead_id", name="uq_sales_account_lead"),
    )
    op.create_index("ix_sales_won_at", "all_sales_tracking", ["won_at"])
    op.create_index("ix_sales_targetologist", "all_sales_tracking", ["targetologist"])
    op.create_index("ix_sales_lead_id", "all_sales_tracking", ["lead_id"])


def downgrade() -> None:
    op.drop_table("all_sales_tracking")
