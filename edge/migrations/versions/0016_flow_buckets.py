"""The flow chart's buckets past their events' retries, kept for every edge process and
after restarts, so a 30-day chart reads only its newest day of webhook_logs.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_flow_buckets",
        sa.Column("step_s", sa.Integer, primary_key=True),
        sa.Column("start_at", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("p50_ms", sa.Float),
        sa.Column("p95_ms", sa.Float),
    )


def downgrade() -> None:
    op.drop_table("webhook_flow_buckets")
