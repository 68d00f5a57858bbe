"""The store saves what the lifecycle rule computes: the table of
tests/support/lifecycle_cases.py goes through record_outcomes() on a real database
(PostgreSQL's one-statement restatement of the rule, or SQLite's call of it) and
through event_lifecycle.next_state(), and every column must agree."""

import dataclasses

import pytest
import sqlalchemy as sa

from amoroute.timeutil import utc
from edge.__main__ import upgrade_database
from edge.event_lifecycle import next_state
from edge.log_store import NewLog, WebhookLogStore, webhook_attempts, webhook_logs
from edge.settings import Settings
from tests.support.lifecycle_cases import CASES

_TIMES = ("retry_at", "processed_at", "at")


@pytest.fixture
def store(make_database) -> WebhookLogStore:  # type: ignore[no-untyped-def]
    url = make_database("edge")
    upgrade_database(Settings(edge_database_url=url))
    return WebhookLogStore(sa.create_engine(url))


def _times_in_utc(row: dict) -> dict:  # type: ignore[type-arg]
    return {k: utc(v) if k in _TIMES and v is not None else v for k, v in row.items()}


def test_the_store_records_exactly_what_the_lifecycle_rule_computes(
    store: WebhookLogStore,
) -> None:
    names = list(CASES)
    ids = store.insert(
        [NewLog(source="amocrm", deal_data={}, lead_id=n) for n in range(len(names))]
    )
    c = webhook_logs.c
    with store.engine.begin() as conn:
        for log_id, name in zip(ids, names, strict=True):
            before = CASES[name][0]
            state = dataclasses.asdict(before)
            # A log without legs holds SQL NULL (the JSON type would write JSON null).
            state["legs"] = before.legs if before.legs is not None else sa.null()
            conn.execute(sa.update(webhook_logs).where(c.id == log_id).values(**state))
    # One batch, as the worker and the routing queue record them.
    store.record_outcomes(
        [
            dataclasses.replace(CASES[name][1], log_id=log_id)
            for log_id, name in zip(ids, names, strict=True)
        ]
    )

    with store.engine.connect() as conn:
        logs = {
            r.id: r._asdict() for r in conn.execute(sa.select(webhook_logs).where(c.id.in_(ids)))
        }
        attempts = {
            r.log_id: r._asdict()
            for r in conn.execute(
                sa.select(webhook_attempts).where(webhook_attempts.c.log_id.in_(ids))
            )
        }
    differences = {}
    for log_id, name in zip(ids, names, strict=True):
        before, out = CASES[name]
        finished = utc(logs[log_id]["processed_at"])
        expected = next_state(before, dataclasses.replace(out, log_id=log_id), finished)
        saved_log = _times_in_utc({k: logs[log_id][k] for k in expected.log})
        saved_attempt = _times_in_utc({k: attempts[log_id][k] for k in expected.attempt})
        if saved_log != expected.log or saved_attempt != expected.attempt:
            differences[name] = {
                "log": {k: (saved_log[k], v) for k, v in expected.log.items() if saved_log[k] != v},
                "attempt": {
                    k: (saved_attempt[k], v)
                    for k, v in expected.attempt.items()
                    if saved_attempt[k] != v
                },
            }
    assert differences == {}, "saved vs computed"
