"""Re-attribution: a conversion credited to another referral code instead is kept,
marked with reattributed_at; one live (not re-attributed) conversion per lead.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_LIVE = sa.text("reattributed_at IS NULL")


def upgrade() -> None:
    # Batch mode: SQLite rebuilds the table (keeping its rows) to drop a constraint.
    with op.batch_alter_table("referral_conversions") as batch:
        batch.add_column(sa.Column("reattributed_at", sa.DateTime(timezone=True), nullable=True))
        batch.drop_constraint("uq_referral_conversions_account_lead", type_="unique")
    op.create_index(
        "uq_referral_conversions_account_lead",
        "referral_conversions",
        ["account_id", "lead_id"],
        unique=True,
        postgresql_where=_LIVE,
        sqlite_where=_LIVE,
    )


def downgrade() -> None:
    # Only the live conversions stay: the unique constraint allows one row per lead.
    op.execute("DELETE FROM referral_conversions WHERE reattributed_at IS NOT NULL")
    op.drop_index("uq_referral_conversions_account_lead", table_name="referral_conversions")
    with op.batch_alter_table("referral_conversions") as batch:
        batch.drop_column("reattributed_at")
        batch.create_unique_constraint(
            "uq_referral_conversions_account_lead", ["account_id", "lead_id"]
        )
