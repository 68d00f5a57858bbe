"""Re-attribution: a sale credited to another targetologist instead is kept,
marked with reattributed_at; one live (not re-attributed) sale per lead.

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
    with op.batch_alter_table("all_sales_tracking") as batch:
        batch.add_column(sa.Column("reattributed_at", sa.DateTime(timezone=True), nullable=True))
        batch.drop_constraint("uq_sales_account_lead", type_="unique")
    op.create_index(
        "uq_sales_account_lead",
        "all_sales_tracking",
        ["account_id", "lead_id"],
        unique=True,
        postgresql_where=_LIVE,
        sqlite_where=_LIVE,
    )


def downgrade() -> None:
    # Only the live sales stay: the unique constraint allows one row per lead.
    op.execute("DELETE FROM all_sales_tracking WHERE reattributed_at IS NOT NULL")
    op.drop_index("uq_sales_account_lead", table_name="all_sales_tracking")
    with op.batch_alter_table("all_sales_tracking") as batch:
        batch.drop_column("reattributed_at")
        batch.create_unique_constraint("uq_sales_account_lead", ["account_id", "lead_id"])
