"""The edge's group commit on a real database: concurrent webhooks share
commits, each gets its own rows' ids, a failed commit fails every waiter, and a
webhook that waits too long for its commit is told so."""

import threading

import pytest
import sqlalchemy as sa

from edge.__main__ import upgrade_database
from edge.log_store import NewLog, WebhookLogStore, webhook_logs
from edge.log_writer import LogWriter
from edge.settings import Settings


@pytest.fixture
def store(make_database) -> WebhookLogStore:  # type: ignore[no-untyped-def]
    url = make_database("edge")
    upgrade_database(Settings(edge_database_url=url))
    return WebhookLogStore(sa.create_engine(url))


def _rows(caller: int, count: int) -> list[NewLog]:
    return [
        NewLog(source="amocrm", deal_data={"caller": caller, "n": n}, lead_id=caller * 100 + n)
        for n in range(count)
    ]


def test_concurrent_writes_each_get_the_ids_of_their_own_rows_in_order(
    store: WebhookLogStore,
) -> None:
    writer = LogWriter(store)
    results: dict[int, list[int]] = {}
    start = threading.Barrier(24)

    def webhook(caller: int) -> None:
        start.wait()
        results[caller] = writer.insert(_rows(caller, 1 + caller % 4))

    threads = [threading.Thread(target=webhook, args=(c,)) for c in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with store.engine.connect() as conn:
        stored = {r.id: r for r in conn.execute(sa.select(webhook_logs))}
    assert len(stored) == sum(1 + c % 4 for c in range(24))
    for caller, ids in results.items():
        assert [stored[i].deal_data for i in ids] == [
            {"caller": caller, "n": n} for n in range(1 + caller % 4)
        ]
        assert [stored[i].lead_id for i in ids] == [caller * 100 + n for n in range(len(ids))]


def test_a_failed_commit_fails_every_webhook_in_it_and_the_next_one_succeeds(
    store: WebhookLogStore,
) -> None:
    writer = LogWriter(store)
    with store.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE webhook_logs RENAME TO webhook_logs_away"))
    try:
        with pytest.raises(sa.exc.SQLAlchemyError):
            writer.insert(_rows(1, 2))
    finally:
        with store.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE webhook_logs_away RENAME TO webhook_logs"))
    [log_id] = writer.insert(_rows(2, 1))
    assert store.find(log_id)["lead_id"] == 200


def test_a_connection_the_server_dropped_is_replaced_and_the_write_goes_through(
    store: WebhookLogStore,
) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("a server-side disconnect is PostgreSQL's")
    writer = LogWriter(store)
    writer.insert(_rows(1, 1))  # the writer now holds its connection
    with store.engine.connect() as conn:
        killed = conn.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )).scalars().all()
    assert killed and all(killed)
    [log_id] = writer.insert(_rows(2, 1))
    assert store.find(log_id)["lead_id"] == 200


def test_a_webhook_whose_commit_waits_too_long_is_told_so_and_the_commit_still_lands(
    store: WebhookLogStore,
) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("a table lock held by another session is PostgreSQL's")
    writer = LogWriter(store)
    writer.insert(_rows(1, 1))  # the writer thread runs and holds its connection
    with store.engine.begin() as conn:
        conn.execute(sa.text("LOCK TABLE webhook_logs IN EXCLUSIVE MODE"))
        with pytest.raises(TimeoutError, match="not committed within 0.3 s"):
            writer.insert(_rows(2, 1), wait_s=0.3)
    # The lock gone, the late commit lands and the next webhook is answered.
    [log_id] = writer.insert(_rows(3, 1))
    assert store.find(log_id)["lead_id"] == 300
    with store.engine.connect() as conn:
        leads = conn.execute(sa.select(webhook_logs.c.lead_id)).scalars().all()
    assert sorted(leads) == [100, 200, 300]


def test_large_bodies_rows_commit_on_their_own_writer_beside_normal_webhooks(
    store: WebhookLogStore,
) -> None:
    """A large body's rows and normal webhooks' rows written at once: each gets the ids
    of its own rows, whichever writer committed them."""
    writer = LogWriter(store)
    results: dict[int, list[int]] = {}
    start = threading.Barrier(9)

    def webhook(caller: int) -> None:
        start.wait()
        large = caller == 0
        results[caller] = writer.insert(_rows(caller, 400 if large else 1), large=large)

    threads = [threading.Thread(target=webhook, args=(c,)) for c in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with store.engine.connect() as conn:
        stored = {r.id: r.lead_id for r in conn.execute(sa.select(webhook_logs))}
    assert len(stored) == 400 + 8
    for caller, ids in results.items():
        assert [stored[i] for i in ids] == [caller * 100 + n for n in range(len(ids))]
