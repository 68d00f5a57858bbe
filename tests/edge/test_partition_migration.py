"""Migration 0011 on a database holding events: every log and attempt is still there with
its id, and ids go on from where they were (PostgreSQL: the tables become partitioned by
month; SQLite: attempts gain their log's received_at)."""

from datetime import UTC, datetime

import sqlalchemy as sa

from amoroute.db import migrate
from edge.__main__ import MIGRATIONS, VERSION_TABLE
from edge.event_lifecycle import SUCCESS, Outcome
from edge.log_store import NewLog, WebhookLogStore, webhook_attempts, webhook_logs

# Months apart, one older than the 24 months the migration makes partitions for.
RECEIVED = [
    datetime(2019, 6, 1, tzinfo=UTC),
    datetime.now(UTC).replace(day=1, hour=3, microsecond=0),
    datetime.now(UTC).replace(microsecond=0),
]


def _rows(engine: sa.Engine) -> tuple[dict[int, tuple], dict[int, tuple]]:
    with engine.connect() as conn:
        logs = {
            r.id: (r.received_at.replace(tzinfo=None), r.lead_id, r.processing_status)
            for r in conn.execute(
                sa.select(
                    webhook_logs.c.id,
                    webhook_logs.c.received_at,
                    webhook_logs.c.lead_id,
                    webhook_logs.c.processing_status,
                )
            )
        }
        attempts = {
            r.id: (r.log_id, r.attempt, r.status)
            for r in conn.execute(
                sa.select(
                    webhook_attempts.c.id,
                    webhook_attempts.c.log_id,
                    webhook_attempts.c.attempt,
                    webhook_attempts.c.status,
                )
            )
        }
    return logs, attempts


def test_partitioning_keeps_every_log_attempt_and_id(make_database) -> None:  # type: ignore[no-untyped-def]
    url = make_database("partition_migration")
    migrate(url, MIGRATIONS, VERSION_TABLE, "0010")
    engine = sa.create_engine(url)
    # The log rows as revision 0010 stores them: its own columns, read from the database
    # (the store's table has the columns of later revisions).
    logs_0010 = sa.Table("webhook_logs", sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        ids = [
            conn.execute(
                sa.insert(logs_0010)
                .values(
                    source="amocrm",
                    deal_data={"n": n},
                    lead_id=100 + n,
                    received_at=RECEIVED[n % len(RECEIVED)],
                    processing_status="success",
                )
                .returning(logs_0010.c.id)
            ).scalar_one()
            for n in range(30)
        ]
        # The attempt rows as revision 0010 stores them (no log_received_at yet).
        for log_id in ids[::2]:
            for attempt in (1, 2):
                conn.execute(
                    sa.text(
                        "INSERT INTO webhook_attempts (log_id, attempt, at, status) "
                        "VALUES (:log_id, :attempt, :at, 'error')"
                    ),
                    {"log_id": log_id, "attempt": attempt, "at": RECEIVED[0]},
                )
    store = WebhookLogStore(engine)
    before_logs, before_attempts = _rows(engine)
    assert len(before_logs) == 30 and len(before_attempts) == 30

    migrate(url, MIGRATIONS, VERSION_TABLE)

    assert _rows(engine) == (before_logs, before_attempts)
    with engine.connect() as conn:
        unmatched = conn.execute(
            sa.select(sa.func.count())
            .select_from(
                webhook_attempts.join(webhook_logs, webhook_logs.c.id == webhook_attempts.c.log_id)
            )
            .where(webhook_attempts.c.log_received_at != webhook_logs.c.received_at)
        ).scalar_one()
    assert unmatched == 0
    # Ids go on from the same sequence.
    [new] = store.insert([NewLog(source="amocrm", deal_data={})])
    assert new > max(ids)
    store.record_outcomes([Outcome(new, SUCCESS, decision="ignored")])
    assert [a["status"] for a in store.attempts(new)] == [SUCCESS]
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            kinds = dict(
                conn.execute(
                    sa.text(
                        "SELECT relname, relkind FROM pg_class "
                        "WHERE relname IN ('webhook_logs', 'webhook_attempts')"
                    )
                ).all()
            )
            where = dict(
                conn.execute(
                    sa.text("SELECT id, tableoid::regclass::text FROM webhook_logs")
                ).all()
            )
        assert kinds == {"webhook_logs": "p", "webhook_attempts": "p"}  # partitioned
        assert where[ids[0]] == "webhook_logs_default"  # 2019: older than every partition
        month = RECEIVED[1]
        assert where[ids[1]] == f"webhook_logs_p{month.year:04d}_{month.month:02d}"
    engine.dispose()
