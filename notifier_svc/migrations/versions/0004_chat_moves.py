"""Chats Telegram moved: a group upgraded to a supergroup gets a new id.

chat_moves records each move (old_chat_id -> new_chat_id) Telegram announced by
answering a send with 400 and parameters.migrate_to_chat_id; a notification
addressed to a moved chat is stored for the chat at the end of the chain of
moves, and keeps the id it was addressed to in moved_from_chat_id. id orders the
moves for ListChatMoves' pages; new_chat_id is indexed to tell a chat that moves
led to (which the bot may post to) from an unknown one.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_moves",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True
        ),
        sa.Column("old_chat_id", sa.String(64), nullable=False),
        sa.Column("new_chat_id", sa.String(64), nullable=False),
        sa.Column("moved_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("old_chat_id", name="uq_chat_moves_old_chat_id"),
    )
    op.create_index("ix_chat_moves_new_chat_id", "chat_moves", ["new_chat_id"])
    op.add_column(
        "notifications", sa.Column("moved_from_chat_id", sa.String(64), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("moved_from_chat_id")
    op.drop_index("ix_chat_moves_new_chat_id", "chat_moves")
    op.drop_table("chat_moves")
