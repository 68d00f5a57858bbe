"""webhook_logs and webhook_attempts partitioned by month on PostgreSQL, for retention.

Retention (edge/retention.py) drops a month's partition once every event in it is past
`WEBHOOK_LOG_RETENTION_DAYS`, instead of deleting millions of rows. Each attempt gets
`log_received_at`, its log's `received_at`, so the attempts are partitioned by the same
months and a month of both is dropped together.

PostgreSQL: the rows are copied into new partitioned tables, which then take the old names;
nothing is lost and every id stays (the same sequences go on numbering, so ids stay unique
and increasing). A partitioned table's primary key must hold its partition key: webhook_logs
is keyed by (id, received_at), webhook_attempts by (id, log_received_at); an attempt names
its log by both columns, without a foreign key (the previous release's attempts could not
satisfy one). Months from the oldest row's (at most 24 months back) to two months ahead get
a partition; a DEFAULT partition takes any row outside them. The tables are locked against
writes for the copy (reads go on): webhooks wait, or fail and are retried by AmoCRM (the
README gives the time at 1 M rows).

SQLite keeps one table each (retention deletes in batches there) and only gains
`log_received_at`.

Revision ID: 0011
Revises: 0010
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# What 0005 set on webhook_logs; a partitioned table holds no storage parameters, so each
# partition of webhook_logs gets them (edge/retention_store.py does the same for new ones).
_VACUUM_OFTEN = "autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 5000"
_MONTHS_BACK_AT_MOST = 24
_MONTHS_AHEAD = 2
_SEARCHED = ("deal_name", "utm_source", "utm_campaign")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("webhook_attempts") as batch:
            batch.add_column(sa.Column("log_received_at", sa.DateTime(timezone=True)))
        op.execute(
            "UPDATE webhook_attempts SET log_received_at = "
            "(SELECT received_at FROM webhook_logs WHERE webhook_logs.id = webhook_attempts.log_id)"
        )
        return
    conn = op.get_bind()
    # Writers wait (or fail) while the rows are copied; readers go on until the swap.
    op.execute("LOCK TABLE webhook_logs, webhook_attempts IN EXCLUSIVE MODE")
    # The sequences outlive the old tables: the new ones number on from them.
    op.execute("ALTER SEQUENCE webhook_logs_id_seq OWNED BY NONE")
    op.execute("ALTER SEQUENCE webhook_attempts_id_seq OWNED BY NONE")
    op.execute(
        "CREATE TABLE webhook_logs_partitioned (LIKE webhook_logs INCLUDING DEFAULTS) "
        "PARTITION BY RANGE (received_at)"
    )
    # The previous release records attempts without log_received_at: they take -infinity,
    # land in the DEFAULT partition, and the worker's next retention run files them under
    # their log's month. So a rolling update (and a rollback) keeps working.
    op.execute(
        "CREATE TABLE webhook_attempts_partitioned (LIKE webhook_attempts INCLUDING DEFAULTS, "
        "log_received_at timestamptz NOT NULL DEFAULT '-infinity') "
        "PARTITION BY RANGE (log_received_at)"
    )
    oldest = conn.execute(sa.text("SELECT min(received_at) FROM webhook_logs")).scalar()
    today = datetime.now(UTC)
    first = _month_index(today)
    if oldest is not None:
        first = min(first, max(first - _MONTHS_BACK_AT_MOST, _month_index(oldest)))
    for index in range(first, _month_index(today) + _MONTHS_AHEAD + 1):
        _create_month(index)
    op.execute(
        "CREATE TABLE webhook_logs_default PARTITION OF webhook_logs_partitioned DEFAULT "
        f"WITH ({_VACUUM_OFTEN})"
    )
    op.execute(
        "CREATE TABLE webhook_attempts_default PARTITION OF webhook_attempts_partitioned DEFAULT"
    )
    op.execute("INSERT INTO webhook_logs_partitioned SELECT * FROM webhook_logs")
    op.execute(
        "INSERT INTO webhook_attempts_partitioned SELECT a.*, l.received_at "
        "FROM webhook_attempts a JOIN webhook_logs l ON l.id = a.log_id"
    )
    op.execute("DROP TABLE webhook_attempts")
    op.execute("DROP TABLE webhook_logs")
    op.execute("ALTER TABLE webhook_logs_partitioned RENAME TO webhook_logs")
    op.execute("ALTER TABLE webhook_attempts_partitioned RENAME TO webhook_attempts")
    op.execute("ALTER SEQUENCE webhook_logs_id_seq OWNED BY webhook_logs.id")
    op.execute("ALTER SEQUENCE webhook_attempts_id_seq OWNED BY webhook_attempts.id")
    # Keys and indexes after the copy: building them once is faster than row by row.
    op.execute(
        "ALTER TABLE webhook_logs ADD CONSTRAINT webhook_logs_pkey PRIMARY KEY (id, received_at)"
    )
    op.execute(
        "ALTER TABLE webhook_attempts ADD CONSTRAINT webhook_attempts_pkey "
        "PRIMARY KEY (id, log_received_at)"
    )
    op.execute(
        "ALTER TABLE webhook_attempts ADD CONSTRAINT uq_webhook_attempts_log_attempt "
        "UNIQUE (log_id, attempt, log_received_at)"
    )
    # No foreign key to the log any more: the previous release's attempts (log_received_at
    # -infinity) could not satisfy one. Retention removes attempts with their logs itself.
    _create_log_indexes()
    op.execute("ANALYZE webhook_logs")
    op.execute("ANALYZE webhook_attempts")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("webhook_attempts") as batch:
            batch.drop_column("log_received_at")
        return
    op.execute("LOCK TABLE webhook_logs, webhook_attempts IN EXCLUSIVE MODE")
    op.execute("ALTER SEQUENCE webhook_logs_id_seq OWNED BY NONE")
    op.execute("ALTER SEQUENCE webhook_attempts_id_seq OWNED BY NONE")
    op.execute("CREATE TABLE webhook_logs_single (LIKE webhook_logs INCLUDING DEFAULTS)")
    op.execute(
        f"ALTER TABLE webhook_logs_single SET ({_VACUUM_OFTEN})"
    )
    op.execute("CREATE TABLE webhook_attempts_single (LIKE webhook_attempts INCLUDING DEFAULTS)")
    op.execute("ALTER TABLE webhook_attempts_single DROP COLUMN log_received_at")
    op.execute("INSERT INTO webhook_logs_single SELECT * FROM webhook_logs")
    op.execute(
        "INSERT INTO webhook_attempts_single SELECT id, log_id, attempt, at, status, "
        "routing_decision, error_message, legs, duration_ms FROM webhook_attempts"
    )
    op.execute("DROP TABLE webhook_attempts")
    op.execute("DROP TABLE webhook_logs")
    op.execute("ALTER TABLE webhook_logs_single RENAME TO webhook_logs")
    op.execute("ALTER TABLE webhook_attempts_single RENAME TO webhook_attempts")
    op.execute("ALTER SEQUENCE webhook_logs_id_seq OWNED BY webhook_logs.id")
    op.execute("ALTER SEQUENCE webhook_attempts_id_seq OWNED BY webhook_attempts.id")
    op.execute("ALTER TABLE webhook_logs ADD PRIMARY KEY (id)")
    op.execute("ALTER TABLE webhook_attempts ADD PRIMARY KEY (id)")
    op.execute(
        "ALTER TABLE webhook_attempts ADD CONSTRAINT uq_webhook_attempts_log_attempt "
        "UNIQUE (log_id, attempt)"
    )
    op.execute(
        "ALTER TABLE webhook_attempts ADD CONSTRAINT webhook_attempts_log_id_fkey "
        "FOREIGN KEY (log_id) REFERENCES webhook_logs (id) ON DELETE CASCADE"
    )
    _create_log_indexes()


def _create_log_indexes() -> None:
    """The indexes 0001-0007 left on webhook_logs (on the partitioned table: each
    partition, present and future, gets its own)."""
    for name, columns in (
        ("ix_webhook_logs_status_id", "processing_status, id"),
        ("ix_webhook_logs_routing_id", "routing_decision, id"),
        ("ix_webhook_logs_source_id", "source, id"),
        ("ix_webhook_logs_lead_id", "lead_id, id"),
        ("ix_webhook_logs_received_at", "received_at"),
    ):
        op.execute(f"CREATE INDEX {name} ON webhook_logs ({columns})")
    op.execute(
        "CREATE INDEX ix_webhook_logs_retry_at_waiting ON webhook_logs (retry_at) "
        "WHERE retry_at IS NOT NULL"
    )
    op.execute(
        "CREATE INDEX ix_webhook_logs_replay_of ON webhook_logs (replay_of) "
        "WHERE replay_of IS NOT NULL"
    )
    trigram = op.get_bind().execute(
        sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
    ).first()
    if trigram:
        for column in _SEARCHED:
            op.execute(
                f"CREATE INDEX ix_webhook_logs_{column}_trgm ON webhook_logs "
                f"USING gin ({column} gin_trgm_ops) WITH (gin_pending_list_limit = 512)"
            )


def _month_index(moment: datetime) -> int:
    return moment.year * 12 + moment.month - 1


def _create_month(index: int) -> None:
    year, month = divmod(index, 12)
    next_year, next_month = divmod(index + 1, 12)
    start = f"{year:04d}-{month + 1:02d}-01 00:00:00+00"
    end = f"{next_year:04d}-{next_month + 1:02d}-01 00:00:00+00"
    suffix = f"p{year:04d}_{month + 1:02d}"
    op.execute(
        f"CREATE TABLE webhook_logs_{suffix} PARTITION OF webhook_logs_partitioned "
        f"FOR VALUES FROM ('{start}') TO ('{end}') WITH ({_VACUUM_OFTEN})"
    )
    op.execute(
        f"CREATE TABLE webhook_attempts_{suffix} PARTITION OF webhook_attempts_partitioned "
        f"FOR VALUES FROM ('{start}') TO ('{end}')"
    )
