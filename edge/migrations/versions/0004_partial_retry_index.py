"""retry_at index only over events that wait for a try.

Most events settle at their first try (retry_at NULL): a partial index keeps
them out, so recording their outcome adds no entry to it, and the worker's
claim and the backlog count read a small index.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_WAITING = sa.text("retry_at IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_webhook_logs_retry_at", "webhook_logs")
    op.create_index(
        "ix_webhook_logs_retry_at_waiting",
        "webhook_logs",
        ["retry_at"],
        postgresql_where=_WAITING,
        sqlite_where=_WAITING,
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_logs_retry_at_waiting", "webhook_logs")
    op.create_index("ix_webhook_logs_retry_at", "webhook_logs", ["retry_at"])
