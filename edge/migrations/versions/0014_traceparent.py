"""The trace a webhook's event arrived in, so the worker's retries link to it.

traceparent is the W3C trace context of the webhook request that logged the event
(amoroute/tracing.py), or NULL when tracing was off. A nullable column without a
default: PostgreSQL adds it without rewriting the table.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("webhook_logs", sa.Column("traceparent", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_logs") as batch:
        batch.drop_column("traceparent")
