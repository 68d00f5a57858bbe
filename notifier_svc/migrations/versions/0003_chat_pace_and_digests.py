"""Pacing shared by every replica, digests, and why a notification failed.

chat_pace holds, per chat (and one row for the bot as a whole), when the next
message may leave: a replica sends to a chat only after moving that row's
next_send_at into the future (a lease), so Telegram's limits hold for the bot
however many replicas run. A notification keeps its amount and its lines for a
digest, so sales waiting for the same chat go out as one message. failure says
why a failed notification failed (chat_unreachable when the bot was blocked or
removed, or the chat does not exist), for the metric and the admin.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_pace",
        sa.Column("chat_id", sa.String(64), primary_key=True),
        sa.Column("next_send_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_token", sa.String(32), nullable=True),
    )
    # Rows stored before this revision have neither: each is sent alone, as before.
    op.add_column("notifications", sa.Column("amount", sa.BigInteger, nullable=True))
    op.add_column("notifications", sa.Column("digest_entry", sa.Text, nullable=True))
    op.add_column(
        "notifications",
        sa.Column("failure", sa.String(32), nullable=False, server_default=""),
    )


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("failure")
        batch.drop_column("digest_entry")
        batch.drop_column("amount")
    op.drop_table("chat_pace")
