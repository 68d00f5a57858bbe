"""AmoCRM status-change events the reconciliation has handled, so a pass that reads an
event again (its window overlaps the previous one, or a worker restarted mid-pass) leaves
it alone. Rows older than the reconciliation window are pruned.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "edge_reconciled_events",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("lead_id", sa.BigInteger, nullable=False),
        # AmoCRM's time of the status change, unix seconds.
        sa.Column("created_at", sa.BigInteger, nullable=False),
        # "won" (into a won status) or "left" (out of one).
        sa.Column("kind", sa.String(10), nullable=False),
        # routed / webhook / stale / missing: what the reconciliation did with it.
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("log_id", sa.BigInteger, nullable=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_edge_reconciled_events_created_at", "edge_reconciled_events", ["created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_edge_reconciled_events_created_at", "edge_reconciled_events")
    op.drop_table("edge_reconciled_events")
