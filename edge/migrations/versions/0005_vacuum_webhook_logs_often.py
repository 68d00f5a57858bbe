"""Autovacuum webhook_logs every few thousand dead rows, not at 20 % of the table.

Every logged event is updated once (its outcome), leaving one dead row and a
dead entry in each index behind. PostgreSQL's default waits for dead rows to
reach 20 % of the table: on a table of millions of rows, hundreds of
thousands of dead entries that intake, outcome recording and the worker's
claim wade through. Measured in the bench: the edge database's backends used
0.61 cores at 500 webhooks/s with 44,000 dead rows and 0.20 cores right after
a VACUUM.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE webhook_logs SET "
            "(autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 5000)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE webhook_logs RESET "
            "(autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold)"
        )
