"""Admin views: deal_name, replay_of, attempt start, webhook_attempts, search indexes.

Revision ID: 0002
Revises: 0001
"""

import html
import logging

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
# Columns the admin `q` search reads with ILIKE '%…%'.
_SEARCHED = ("deal_name", "utm_source", "utm_campaign")


def upgrade() -> None:
    with op.batch_alter_table("webhook_logs") as batch:
        # The lead's name, copied out of deal_data so the search does not scan JSON.
        batch.add_column(sa.Column("deal_name", sa.Text, nullable=True))
        # The log this one replays (source = 'replay').
        batch.add_column(sa.Column("replay_of", sa.BigInteger, nullable=True))
        # When the current attempt started (intake or a worker's claim): its duration's origin.
        batch.add_column(sa.Column("attempt_started_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_webhook_logs_replay_of", "webhook_logs", ["replay_of"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", _ID, primary_key=True),
        sa.Column(
            "log_id",
            sa.BigInteger,
            sa.ForeignKey("webhook_logs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("routing_decision", sa.String(20), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("legs", _JSON, nullable=True),
        sa.Column("duration_ms", sa.Integer, nullable=True),
        sa.UniqueConstraint("log_id", "attempt", name="uq_webhook_attempts_log_attempt"),
    )
    _backfill_deal_names()
    if op.get_bind().dialect.name == "postgresql" and _trigram_available():
        for column in _SEARCHED:
            op.create_index(
                f"ix_webhook_logs_{column}_trgm",
                "webhook_logs",
                [column],
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
            )


def downgrade() -> None:
    for column in _SEARCHED:
        op.execute(f"DROP INDEX IF EXISTS ix_webhook_logs_{column}_trgm")
    op.drop_table("webhook_attempts")
    op.drop_index("ix_webhook_logs_replay_of", "webhook_logs")
    with op.batch_alter_table("webhook_logs") as batch:
        batch.drop_column("attempt_started_at")
        batch.drop_column("replay_of")
        batch.drop_column("deal_name")


def _trigram_available() -> bool:
    """CREATE EXTENSION pg_trgm inside a savepoint: a role without the right to
    create it must not abort the migration; the search then runs unindexed."""
    conn = op.get_bind()
    savepoint = conn.begin_nested()
    try:
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as exc:
        savepoint.rollback()
        log.warning("pg_trgm unavailable, deal search is not indexed: %s", exc.orig)
        return False
    savepoint.commit()
    return True


def _backfill_deal_names() -> None:
    # Python, not SQL: the stored name is AmoCRM's HTML-escaped text, as intake() unescapes it.
    conn = op.get_bind()
    logs = sa.table(
        "webhook_logs",
        sa.column("id", sa.BigInteger),
        sa.column("deal_data", _JSON),
        sa.column("deal_name", sa.Text),
    )
    rows = conn.execute(sa.select(logs.c.id, logs.c.deal_data)).all()
    names = [
        {"log_id": row.id, "name": html.unescape(name)}
        for row in rows
        if isinstance(row.deal_data, dict)
        and isinstance(row.deal_data.get("lead"), dict)
        and isinstance(name := row.deal_data["lead"].get("name"), str)
    ]
    if names:
        conn.execute(
            sa.update(logs)
            .where(logs.c.id == sa.bindparam("log_id"))
            .values(deal_name=sa.bindparam("name")),
            names,
        )
