"""The trace a notification was asked for in, so its later send joins that trace.

traceparent is the W3C trace context of the Notify call that stored the row
(amoroute/tracing.py), or NULL when tracing was off; the outbox's send of the
row continues that trace. 55 characters: version, trace id, span id, flags.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("traceparent", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("traceparent")
