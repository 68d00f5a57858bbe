"""Groups of unknown sales an admin marked "not attributable" (organic, direct): they leave
the review queue.

Keyed by a digest of the group key: a key holds normalised UTM values of any length, more
than a B-tree entry takes.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_dismissals",
        sa.Column("key_sha256", sa.String(64), primary_key=True),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("dismissed_by", sa.String(100), nullable=False),
        sa.Column("dismissed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("review_dismissals")
