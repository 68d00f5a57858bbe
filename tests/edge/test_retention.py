"""webhook_logs retention on a real database, with a clock the test sets: rows are made old
by moving their received_at, and each run is given the moment it runs at.

On PostgreSQL the months are partitions (migration 0011): a month wholly past the retention
is dropped, what must stay of it moves to the DEFAULT partition, and the DEFAULT partition
is pruned row by row. On SQLite the same rows go by batched deletes."""

import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from edge.__main__ import upgrade_database
from edge.event_lifecycle import ERROR, SUCCESS, Outcome
from edge.log_store import NewLog, WebhookLogStore, webhook_attempts, webhook_logs
from edge.retention import RetentionPolicy
from edge.retention_store import RetentionStore
from edge.settings import Settings
from edge.worker import Worker

POLICY = RetentionPolicy(days=90, error_days=180)


@pytest.fixture
def store(make_database) -> WebhookLogStore:  # type: ignore[no-untyped-def]
    url = make_database("retention")
    upgrade_database(Settings(edge_database_url=url))
    return WebhookLogStore(sa.create_engine(url))


def _log(store: WebhookLogStore, received_at: datetime, outcome: Outcome | None) -> int:
    """One event received at `received_at`, with the outcome recorded (an attempt row)
    or still pending."""
    [log_id] = store.insert([NewLog(source="amocrm", deal_data={"t": str(received_at)})])
    if outcome is not None:
        store.record_outcomes([Outcome(**{**outcome.__dict__, "log_id": log_id})])
    _age(store, log_id, received_at)
    return log_id


def _age(store: WebhookLogStore, log_id: int, received_at: datetime) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(webhook_logs)
            .where(webhook_logs.c.id == log_id)
            .values(received_at=received_at)
        )
        # SQLite keeps no foreign key on it: the column follows by hand there.
        conn.execute(
            sa.update(webhook_attempts)
            .where(webhook_attempts.c.log_id == log_id)
            .values(log_received_at=received_at)
        )


def _ids(store: WebhookLogStore) -> set[int]:
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(webhook_logs.c.id)).scalars())


def _attempt_log_ids(store: WebhookLogStore) -> set[int]:
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(webhook_attempts.c.log_id)).scalars())


def _partition_of(store: WebhookLogStore, log_id: int) -> str:
    with store.engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT tableoid::regclass::text FROM webhook_logs WHERE id = :id"),
            {"id": log_id},
        ).scalar_one()


SUCCEEDED = Outcome(0, SUCCESS, decision="traffic", legs={"traffic": "recorded"})
FAILED_FOR_GOOD = Outcome(0, ERROR, decision="traffic", error_message="bad deal")
STILL_RETRIED = Outcome(0, ERROR, decision="traffic", error_message="router down", retry=True)


def test_old_settled_events_go_with_their_attempts_and_unsettled_ones_stay(
    store: WebhookLogStore,
) -> None:
    retention = RetentionStore(store.engine, POLICY, batch=2)
    # Partitions for January to March 2030 exist once a run has been made in January.
    retention.run(datetime(2030, 1, 15, tzinfo=UTC))
    january = datetime(2030, 1, 10, tzinfo=UTC)
    succeeded = [_log(store, january + timedelta(hours=n), SUCCEEDED) for n in range(5)]
    failed = _log(store, january, FAILED_FOR_GOOD)
    retried = _log(store, january, STILL_RETRIED)
    pending = _log(store, january, None)
    recent = _log(store, datetime(2030, 5, 20, tzinfo=UTC), SUCCEEDED)
    assert _attempt_log_ids(store) == {*succeeded, failed, retried, recent}

    # June 15th: January is past the 90 days, not past the errors' 180.
    report = retention.run(datetime(2030, 6, 15, tzinfo=UTC))

    assert _ids(store) == {failed, retried, pending, recent}
    assert _attempt_log_ids(store) == {failed, retried, recent}
    if store.postgres:
        assert "p2030_01" in report.dropped and "p2030_02" in report.dropped
        assert report.kept_from_dropped == 3
        assert {_partition_of(store, i) for i in (failed, retried, pending)} == {
            "webhook_logs_default"
        }
    else:
        assert report.deleted == 5

    # August: the error is past its 180 days; the events still waiting for a try stay.
    retention.run(datetime(2030, 8, 1, tzinfo=UTC))
    assert _ids(store) == {retried, pending, recent}
    assert _attempt_log_ids(store) == {retried, recent}
    assert store.find(retried)["processing_status"] == ERROR  # type: ignore[index]


def test_one_worker_of_several_runs_retention_each_interval(
    store: WebhookLogStore, caplog: pytest.LogCaptureFixture
) -> None:
    # At INFO, as the worker runs in production: its "retention run" line is written.
    caplog.set_level(logging.INFO, logger="edge.worker")
    old = _log(store, datetime(2001, 1, 1, tzinfo=UTC), SUCCEEDED)
    workers = [
        Worker(
            store,
            dispatcher=None,  # type: ignore[arg-type]
            batch_size=10,
            timeout_s=1,
            retention=RetentionStore(store.engine, POLICY),
            retention_every=timedelta(hours=1),
        )
        for _ in range(4)
    ]
    ran: list[bool] = []
    start = threading.Barrier(len(workers))

    def run(worker: Worker) -> None:
        start.wait()
        ran.append(worker.retain_if_due())

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(ran) == [False, False, False, True]
    assert old not in _ids(store)
    # Within the interval nobody runs it again.
    assert not any(w.retain_if_due() for w in workers)
    report = store.last_report("retention")
    assert report is not None and report["deleted"] == 1
    [line] = [r for r in caplog.records if r.getMessage() == "retention run"]
    assert line.retention["deleted"] == 1  # type: ignore[attr-defined]


def test_partitions_are_made_ahead_and_take_their_rows_from_default(
    store: WebhookLogStore,
) -> None:
    if not store.postgres:
        pytest.skip("partitions are PostgreSQL's")
    retention = RetentionStore(store.engine, POLICY)
    # A clock gone wrong logged an event in May 2031, before any partition was made for it.
    early = _log(store, datetime(2031, 5, 10, tzinfo=UTC), SUCCEEDED)
    assert _partition_of(store, early) == "webhook_logs_default"

    report = retention.run(datetime(2031, 3, 15, tzinfo=UTC))

    assert report.created == ["p2031_03", "p2031_04", "p2031_05"]
    assert _partition_of(store, early) == "webhook_logs_p2031_05"
    assert [a["attempt"] for a in store.attempts(early)] == [1]
    with store.engine.connect() as conn:
        attempts_in = conn.execute(
            sa.text("SELECT tableoid::regclass::text FROM webhook_attempts WHERE log_id = :id"),
            {"id": early},
        ).scalar_one()
        options = conn.execute(
            sa.text("SELECT reloptions FROM pg_class WHERE relname = 'webhook_logs_p2031_04'")
        ).scalar_one()
    assert attempts_in == "webhook_attempts_p2031_05"
    assert "autovacuum_vacuum_threshold=5000" in options
    # A second run finds them made.
    assert retention.run(datetime(2031, 3, 16, tzinfo=UTC)).created == []
    # New events of those months go to their partition.
    [new] = store.insert([NewLog(source="amocrm", deal_data={})])
    _age(store, new, datetime(2031, 4, 2, tzinfo=UTC))
    assert _partition_of(store, new) == "webhook_logs_p2031_04"


def test_an_event_older_than_every_partition_is_logged_in_default_and_pruned_there(
    store: WebhookLogStore,
) -> None:
    if not store.postgres:
        pytest.skip("partitions are PostgreSQL's")
    # An import or a restore: events from 2001, before every partition.
    ancient = _log(store, datetime(2001, 3, 1, tzinfo=UTC), SUCCEEDED)
    ancient_pending = _log(store, datetime(2001, 3, 1, tzinfo=UTC), None)
    assert _partition_of(store, ancient) == "webhook_logs_default"

    report = RetentionStore(store.engine, POLICY).run(datetime.now(UTC))

    assert report.deleted == 1
    assert ancient not in _ids(store) and ancient_pending in _ids(store)
    assert ancient not in _attempt_log_ids(store)
    assert store.oldest_received_at() == datetime(2001, 3, 1, tzinfo=UTC)


def test_attempts_the_previous_release_records_are_kept_and_filed_under_their_month(
    store: WebhookLogStore,
) -> None:
    if not store.postgres:
        pytest.skip("partitions are PostgreSQL's")
    [log_id] = store.insert([NewLog(source="amocrm", deal_data={})])
    # The release before migration 0011 names no log_received_at.
    with store.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO webhook_attempts (log_id, attempt, at, status) "
                "VALUES (:id, 1, now(), 'success')"
            ),
            {"id": log_id},
        )
    report = RetentionStore(store.engine, POLICY).run(datetime.now(UTC))

    assert report.filed == 1
    [attempt] = store.attempts(log_id)
    assert attempt["log_received_at"] == store.find(log_id)["received_at"]  # type: ignore[index]
    with store.engine.connect() as conn:
        where = conn.execute(
            sa.text("SELECT tableoid::regclass::text FROM webhook_attempts WHERE log_id = :id"),
            {"id": log_id},
        ).scalar_one()
    assert where == _partition_of(store, log_id).replace("webhook_logs", "webhook_attempts")
