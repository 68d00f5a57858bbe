"""Re-attribution: a sale credited to another targetologist instead is kept,
marked with reattributed_at; one live (not re-attributed) sale per lead.

Revision ID: 0003
Revises: 0002
"""

from amoroute.ledger_migrations import add_reattribution, drop_reattribution

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLE, UNIQUE = "all_sales_tracking", "uq_sales_account_lead"


def upgrade() -> None:
    add_reattribution(TABLE, UNIQUE)


def downgrade() -> None:
    drop_reattribution(TABLE, UNIQUE)
