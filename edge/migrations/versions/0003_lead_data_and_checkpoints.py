"""Events waiting for lead data from the AmoCRM API; checkpoints of periodic jobs.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_logs") as batch:
        batch.add_column(
            sa.Column("awaiting_lead_data", sa.Boolean, nullable=False, server_default=sa.false())
        )
    op.create_table(
        "edge_checkpoints",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_report", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("edge_checkpoints")
    with op.batch_alter_table("webhook_logs") as batch:
        batch.drop_column("awaiting_lead_data")
