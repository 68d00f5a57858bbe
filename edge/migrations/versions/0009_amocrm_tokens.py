"""AmoCRM OAuth 2.0 tokens: one row, the access and refresh token encrypted with
AMOROUTE_SECRET_KEY, locked by whichever process refreshes them.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "amocrm_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("access_token", sa.Text, nullable=True),
        sa.Column("refresh_token", sa.Text, nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("needs_reconnect", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("problem", sa.Text, nullable=True),
        sa.Column("bootstrap_sha256", sa.String(64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("amocrm_tokens")
