"""The daily summary, once per chat and day.

daily_summaries holds one row per (chat_id, day): the chat as the routing rules
name it (or the default chat) and the local day the summary is about. A replica
inserts the row, and the summary's messages into notifications, in one
transaction; a replica that finds the row already there sends nothing, so a
chat gets one summary a day whatever the restarts or replicas. The messages are
notifications of account 0 with negative lead ids (-(id * 1000 + part)), which
no sale has (a sale's lead id is positive): they go out through the outbox and
its pacing like any sale.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "daily_summaries",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True
        ),
        sa.Column("chat_id", sa.String(64), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("parts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("chat_id", "day", name="uq_daily_summaries_chat_day"),
    )


def downgrade() -> None:
    op.drop_table("daily_summaries")
