"""Why an event was credited, and the request it came in.

route holds the router's explanation of its decision (reason, referral code,
targetologist), stored with the outcome; request holds the webhook request's id,
content type and user agent, stored with the event. Both nullable JSON columns
without a default: PostgreSQL adds them without rewriting the table.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("webhook_logs", sa.Column("route", _JSON, nullable=True))
    op.add_column("webhook_logs", sa.Column("request", _JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_logs") as batch:
        batch.drop_column("request")
        batch.drop_column("route")
