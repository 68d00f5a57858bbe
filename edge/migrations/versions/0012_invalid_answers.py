"""Webhook answers AmoCRM counts as invalid (outside 2xx, or slower than 2 s), per minute and
cause, so every edge process and replica adds to one rolling 2-hour count.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_invalid_answers",
        # Unix seconds of the minute's start.
        sa.Column("minute", sa.BigInteger, primary_key=True),
        # The status answered ("503"), or "slow" for a 2xx answered after 2 s.
        sa.Column("cause", sa.String(20), primary_key=True),
        sa.Column("answers", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webhook_invalid_answers")
