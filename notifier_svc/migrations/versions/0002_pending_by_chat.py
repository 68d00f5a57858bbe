"""Pending rows indexed by chat, for a sweep that takes each chat's oldest.

The sweep used to take the 50 longest-waiting due rows of all chats. During a
campaign burst those were all one chat's, which Telegram lets us send about one
message a second, so every other chat waited behind that backlog. The sweep now
takes each chat's longest-waiting due row (NotificationStore.due): it skips
from chat to chat along this index, and finds each chat's oldest row in it.
Only pending rows are in it. The (status, next_attempt_at) index served the old
sweep alone and is dropped.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_index(
        "ix_notifications_pending_chat",
        "notifications",
        ["chat_id", "next_attempt_at", "id"],
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )
    op.drop_index("ix_notifications_status_next_attempt_at", "notifications")


def downgrade() -> None:
    op.create_index(
        "ix_notifications_status_next_attempt_at", "notifications", ["status", "next_attempt_at"]
    )
    op.drop_index("ix_notifications_pending_chat", "notifications")
