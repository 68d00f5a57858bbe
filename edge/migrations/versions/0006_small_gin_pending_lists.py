"""Trigram indexes flush their pending list every 512 kB, not every 4 MB.

Every intake row and every outcome adds trigram entries to the three search
indexes (a non-HOT update indexes the new row version again). GIN queues them
in a pending list, and the statement that finds the list over
gin_pending_list_limit merges all of it into the index while the webhooks of
that commit wait, the longer the bigger the list. A smaller limit makes
shorter merges at the same median cost; turning fastupdate off instead removed
the stalls but made each outcome costlier.

PERF: smaller pending lists, not fastupdate off; measured by logging 36,000 rows
3 at a time with an outcome per row, each way (figures in commit d673892).

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The indexes 0002 creates when pg_trgm is available.
_TRIGRAM_INDEXES = (
    "ix_webhook_logs_deal_name_trgm",
    "ix_webhook_logs_utm_source_trgm",
    "ix_webhook_logs_utm_campaign_trgm",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in _TRIGRAM_INDEXES:
            op.execute(f"ALTER INDEX IF EXISTS {name} SET (gin_pending_list_limit = 512)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in _TRIGRAM_INDEXES:
            op.execute(f"ALTER INDEX IF EXISTS {name} RESET (gin_pending_list_limit)")
