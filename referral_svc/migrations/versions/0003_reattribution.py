"""Re-attribution: a conversion credited to another referral code instead is kept,
marked with reattributed_at; one live (not re-attributed) conversion per lead.

Revision ID: 0003
Revises: 0002
"""

from amoroute.ledger_migrations import add_reattribution, drop_reattribution

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLE, UNIQUE = "referral_conversions", "uq_referral_conversions_account_lead"


def upgrade() -> None:
    add_reattribution(TABLE, UNIQUE)


def downgrade() -> None:
    drop_reattribution(TABLE, UNIQUE)
