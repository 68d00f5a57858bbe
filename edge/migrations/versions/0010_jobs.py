"""Long admin jobs the worker runs in chunks: bulk replay now, re-attribution next.

A worker holds a job by a lease (`claimed_by`, `lease_until`) and records its progress
(`cursor`, `done`, `failed`) with each chunk, so another worker resumes an interrupted job
where it stopped. `until_id`: the newest log id when the job was created; later events are
not part of it.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("until_id", sa.BigInteger, nullable=False),
        sa.Column("total", sa.BigInteger),
        sa.Column("done", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("failed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cursor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("error", sa.Text),
    )
    # The worker looks for work among unfinished jobs only.
    op.create_index(
        "jobs_unfinished",
        "jobs",
        ["id"],
        postgresql_where=sa.text("state IN ('queued', 'running')"),
        sqlite_where=sa.text("state IN ('queued', 'running')"),
    )


def downgrade() -> None:
    op.drop_index("jobs_unfinished", table_name="jobs")
    op.drop_table("jobs")
