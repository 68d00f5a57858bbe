"""webhook_logs on a real database: claims by several workers at once, text
PostgreSQL cannot store, and how recorded outcomes change a log."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from amoroute.timeutil import utc
from edge.__main__ import upgrade_database
from edge.event_lifecycle import MAX_ATTEMPTS, PARTIAL, PENDING, SUCCESS, Outcome
from edge.log_store import NewLog, WebhookLogStore, webhook_logs
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
    # A partitioned table holds no storage parameters: each of its partitions does.
    with store.engine.connect() as conn:
        options = dict(conn.execute(sa.text(
            "SELECT c.relname, c.reloptions FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'webhook_logs'::regclass"
        )).all())
    assert "webhook_logs_default" in options and len(options) >= 4
    assert {name: set(o or ()) for name, o in options.items()} == {
        name: {"autovacuum_vacuum_scale_factor=0.01", "autovacuum_vacuum_threshold=5000"}
        for name in options
    }


def test_search_indexes_merge_their_pending_entries_in_small_steps(
    store: WebhookLogStore,
) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("GIN indexes are PostgreSQL's")
    with store.engine.connect() as conn:
        options = dict(conn.execute(sa.text(
            "SELECT relname, reloptions FROM pg_class WHERE relname LIKE 'ix_webhook_logs_%_trgm'"
        )).all())
    assert options == {
        f"ix_webhook_logs_{column}_trgm": ["gin_pending_list_limit=512"]
        for column in ("deal_name", "utm_source", "utm_campaign")
    }


def _log(store: WebhookLogStore, lead_id: int) -> int:
    [log_id] = store.insert([NewLog(source="amocrm", deal_data={"lead": lead_id}, lead_id=lead_id)])
    return log_id


def test_outcomes_count_attempts_back_off_and_merge_legs(store: WebhookLogStore) -> None:
    log_id = _log(store, 10)
    before = datetime.now(UTC)
    store.record_outcomes([Outcome(log_id, PENDING, error_message="router UNAVAILABLE: down",
                                   retry=True)])
    row = store.find(log_id)
    assert (row["attempts"], row["processing_status"], row["routing_decision"]) == (1, PENDING, None)
    assert row["error_message"] == "router UNAVAILABLE: down"
    assert utc(row["retry_at"]) - utc(row["processed_at"]) == timedelta(seconds=5)
    assert utc(row["processed_at"]) >= before and row["processing_ms"] >= 0

    store.record_outcomes([Outcome(log_id, PARTIAL, decision="both", utm_source="ref_a",
                                   utm_campaign="kenesary_x", error_message="referral: down",
                                   retry=True, legs={"traffic": "recorded", "referral": "failed"})])
    row = store.find(log_id)
    assert (row["attempts"], row["processing_status"], row["routing_decision"]) == (2, PARTIAL, "both")
    assert (row["utm_source"], row["utm_campaign"]) == ("ref_a", "kenesary_x")
    assert utc(row["retry_at"]) - utc(row["processed_at"]) == timedelta(seconds=10)
    assert row["legs"] == {"traffic": "recorded", "referral": "failed"}

    # An outcome that decides nothing (a retry of the failed leg only) keeps the
    # decision and the UTM marks; its legs are merged into the earlier ones.
    store.record_outcomes([Outcome(log_id, SUCCESS, legs={"referral": "recorded"},
                                   awaiting_lead_data=False)])
    row = store.find(log_id)
    assert (row["attempts"], row["processing_status"], row["routing_decision"]) == (3, SUCCESS, "both")
    assert (row["utm_source"], row["utm_campaign"], row["error_message"]) == ("ref_a", "kenesary_x", None)
    assert row["retry_at"] is None
    assert row["legs"] == {"traffic": "recorded", "referral": "recorded"}

    attempts = store.attempts(log_id)
    assert [(a["attempt"], a["status"], a["routing_decision"]) for a in attempts] == [
        (1, PENDING, None), (2, PARTIAL, "both"), (3, SUCCESS, None)]
    assert [a["legs"] for a in attempts] == [
        None, {"traffic": "recorded", "referral": "failed"}, {"referral": "recorded"}]
    assert [a["error_message"] for a in attempts] == ["router UNAVAILABLE: down", "referral: down", None]
    assert all(a["duration_ms"] >= 0 for a in attempts)


def test_an_event_retried_too_often_is_given_up(store: WebhookLogStore) -> None:
    log_id = _log(store, 11)
    with store.engine.begin() as conn:
        conn.execute(sa.update(webhook_logs).where(webhook_logs.c.id == log_id)
                     .values(attempts=MAX_ATTEMPTS - 1))
    store.record_outcomes([Outcome(log_id, PENDING, error_message="router UNAVAILABLE: down",
                                   retry=True)])
    row = store.find(log_id)
    assert row["attempts"] == MAX_ATTEMPTS and row["retry_at"] is None
    expected = f"router UNAVAILABLE: down (gave up after {MAX_ATTEMPTS} attempts)"
    assert row["error_message"] == expected
    assert store.attempts(log_id)[-1]["error_message"] == expected


def test_outcomes_of_deleted_logs_are_skipped(store: WebhookLogStore) -> None:
    kept, gone = _log(store, 12), _log(store, 13)
    with store.engine.begin() as conn:
        conn.execute(sa.delete(webhook_logs).where(webhook_logs.c.id == gone))
    store.record_outcomes([Outcome(gone, SUCCESS, decision="unknown"),
                           Outcome(kept, SUCCESS, decision="unknown")])
    assert store.find(kept)["routing_decision"] == "unknown"
    assert store.find(gone) is None and store.attempts(gone) == []


def test_concurrent_outcomes_of_one_log_number_their_attempts_uniquely(
    store: WebhookLogStore,
) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("concurrent writers: PostgreSQL's row locks (SQLite runs one writer)")
    log_id = _log(store, 14)
    start = threading.Barrier(4)

    def record() -> None:
        start.wait()
        for _ in range(15):
            store.record_outcomes([Outcome(log_id, PENDING, error_message="again", retry=True)])

    threads = [threading.Thread(target=record) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.find(log_id)["attempts"] == 60
    assert [a["attempt"] for a in store.attempts(log_id)] == list(range(1, 61))


def test_make_due_hands_over_only_events_waiting_for_their_first_try(
    store: WebhookLogStore,
) -> None:
    waiting, done, retrying = _log(store, 20), _log(store, 21), _log(store, 22)
    [ignored] = store.insert([NewLog(source="amocrm", deal_data={}, lead_id=23,
                                     processing_status=SUCCESS, routing_decision="ignored")])
    store.record_outcomes([Outcome(done, SUCCESS, decision="unknown"),
                           Outcome(retrying, PENDING, error_message="router down", retry=True)])
    before = {i: store.find(i)["retry_at"] for i in (done, retrying, ignored)}
    moment = datetime.now(UTC)

    store.make_due([waiting, done, retrying, ignored, 999_999])

    assert utc(store.find(waiting)["retry_at"]) <= datetime.now(UTC)
    assert utc(store.find(waiting)["retry_at"]) >= moment - timedelta(seconds=1)
    assert {i: store.find(i)["retry_at"] for i in (done, retrying, ignored)} == before
    assert before[done] is None and before[ignored] is None
    assert [e.id for e in store.claim_due(10, timedelta(minutes=5))] == [waiting]
