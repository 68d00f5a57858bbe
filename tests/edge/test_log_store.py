"""webhook_logs on a real database: claims by several workers at once, and text
PostgreSQL cannot store."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from edge.__main__ import upgrade_database
from edge.logs import NewLog, WebhookLogStore, webhook_logs
from edge.settings import Settings


@pytest.fixture
def store(make_database) -> WebhookLogStore:  # type: ignore[no-untyped-def]
    url = make_database("edge")
    upgrade_database(Settings(edge_database_url=url))
    return WebhookLogStore(sa.create_engine(url))


def test_several_workers_claim_every_due_event_exactly_once(store: WebhookLogStore) -> None:
    ids = store.insert([NewLog(source="amocrm", deal_data={"n": i}, lead_id=i) for i in range(200)])
    with store.engine.begin() as conn:  # make them all due now
        conn.execute(sa.update(webhook_logs).values(retry_at=datetime(2000, 1, 1, tzinfo=UTC)))
    claimed: list[list[int]] = [[] for _ in range(4)]
    start = threading.Barrier(4)

    def worker(n: int) -> None:
        start.wait()
        while batch := store.claim_due(7, timedelta(minutes=5)):
            claimed[n] += [e.id for e in batch]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for part in claimed for i in part]
    assert sorted(every) == sorted(ids)  # none missed, none claimed twice
    assert sum(1 for part in claimed if part) >= 2  # the work really was shared


def test_text_with_nul_characters_is_stored_not_refused(store: WebhookLogStore) -> None:
    [log_id] = store.insert([NewLog(source="amocrm", deal_data={"name": "a\x00b", "k\x00": ["\x00"]},
                                    deal_name="a\x00b", lead_id=1)])
    row = store.find(log_id)
    assert row is not None
    assert row["deal_data"] == {"name": "a\ufffdb", "k\ufffd": ["\ufffd"]}
    assert row["deal_name"] == "a\ufffdb"


def test_the_text_backslash_u0000_is_kept_as_written(store: WebhookLogStore) -> None:
    text = "C:\\u0000\\path and \\\\u0000"
    [plain, with_nul] = store.insert([
        NewLog(source="amocrm", deal_data={"note": text}, deal_name=text, lead_id=2),
        NewLog(source="amocrm", deal_data={"note": text + "\x00"}, lead_id=3),
    ])
    assert store.find(plain)["deal_data"] == {"note": text}
    assert store.find(plain)["deal_name"] == text
    assert store.find(with_nul)["deal_data"] == {"note": text + "\ufffd"}


def test_deal_data_beyond_what_fast_json_encodes_is_still_logged(store: WebhookLogStore) -> None:
    # An int beyond 64 bits (an AmoCRM API answer can hold one) and a non-text key.
    huge = 2**70
    [log_id] = store.insert(
        [NewLog(source="reconcile", deal_data={"price": huge, "n": {7: "seven"}}, lead_id=4)]
    )
    row = store.find(log_id)
    assert row is not None
    assert row["deal_data"] == {"price": huge, "n": {"7": "seven"}}


def test_webhook_logs_is_vacuumed_every_few_thousand_dead_rows(store: WebhookLogStore) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("autovacuum settings are PostgreSQL's")
    with store.engine.connect() as conn:
        options = conn.execute(
            sa.text("SELECT reloptions FROM pg_class WHERE relname = 'webhook_logs'")
        ).scalar_one()
    assert set(options) == {"autovacuum_vacuum_scale_factor=0.01", "autovacuum_vacuum_threshold=5000"}
