"""Create referral_conversions and referral_partners.

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
        "referral_conversions",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("account_id", sa.BigInteger, nullable=False),
        sa.Column("lead_id", sa.BigInteger, nullable=False),
        sa.Column("referral_code", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("deal_name", sa.Text, nullable=False),
        sa.Column("won_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("utm_source", sa.Text, nullable=False),
        sa.Column("utm_medium", sa.Text, nullable=False),
        sa.Column("utm_campaign", sa.Text, nullable=False),
        sa.Column("utm_content", sa.Text, nullable=False),
        sa.Column("utm_term", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("account_id", "lead_id", name="uq_referral_conversions_account_lead"),
    )
    op.create_index(
        "ix_referral_conversions_referral_code", "referral_conversions", ["referral_code"]
    )
    op.create_index("ix_referral_conversions_won_at", "referral_conversions", ["won_at"])
    op.create_index("ix_referral_conversions_lead_id", "referral_conversions", ["lead_id"])

    op.create_table(
        "referral_partners",
        # Stored upper-case, as conversions store it, so the two join on equality.
        sa.Column("referral_code", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("commission_bp", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "commission_bp BETWEEN 0 AND 10000", name="ck_referral_partners_commission_bp"
        ),
    )


def downgrade() -> None:
    op.drop_table("referral_partners")
    op.drop_table("referral_conversions")
