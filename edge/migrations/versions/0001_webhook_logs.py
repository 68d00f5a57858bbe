"""Create webhook_logs.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhook_logs",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("event", sa.String(20), nullable=True),
        sa.Column("account_id", sa.BigInteger, nullable=True),
        sa.Column("pipeline_id", sa.BigInteger, nullable=True),
        sa.Column("status_id", sa.BigInteger, nullable=True),
        sa.Column("lead_id", sa.BigInteger, nullable=True),
        sa.Column("lead_updated_at", sa.BigInteger, nullable=True),
        sa.Column("deal_data", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("utm_source", sa.Text, nullable=True),
        sa.Column("utm_campaign", sa.Text, nullable=True),
        sa.Column("routing_decision", sa.String(20), nullable=True),
        sa.Column("processing_status", sa.String(20), nullable=False),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("processing_ms", sa.Integer, nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        # Outcome of each downstream leg ({"referral": "recorded", ...}).
        sa.Column("legs", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True),
        # When the worker should (re)try the event; NULL: finished or not retryable.
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
    )
    # The admin API filters on these and always sorts newest first (id desc).
    op.create_index("ix_webhook_logs_status_id", "webhook_logs", ["processing_status", "id"])
    op.create_index("ix_webhook_logs_routing_id", "webhook_logs", ["routing_decision", "id"])
    op.create_index("ix_webhook_logs_source_id", "webhook_logs", ["source", "id"])
    op.create_index("ix_webhook_logs_lead_id", "webhook_logs", ["lead_id", "id"])
    op.create_index("ix_webhook_logs_received_at", "webhook_logs", ["received_at"])
    op.create_index("ix_webhook_logs_retry_at", "webhook_logs", ["retry_at"])


def downgrade() -> None:
    op.drop_table("webhook_logs")
