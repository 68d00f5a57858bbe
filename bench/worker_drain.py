"""`python -m bench.worker_drain`: how fast edge.worker routes a backlog alone,
e.g. after the router or a service was down. Starts the whole stack on
PostgreSQL (tests/support/stack.py), logs BENCH_DRAIN_EVENTS (20,000) won deals
straight into webhook_logs as pending, makes them all due at once and times
the worker until none is pending. The edge's own routing queues are idle:
every event goes through the worker's claim, route and record.

Compare two commits by running it on each."""

import os
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from amoroute.db import create_engine
from edge.amocrm_form import FormLimits
from edge.log_store import NewLog, WebhookLogStore, webhook_logs
from edge.webhook import intake
from tests.support.databases import create_database, drop_database
from tests.support.forms import encode, won_deal_body
from tests.support.stack import start_stack

EVENTS = int(os.environ.get("BENCH_DRAIN_EVENTS", "20000"))
FORM = "application/x-www-form-urlencoded"


def backlog(store: WebhookLogStore, events: int) -> None:
    for start in range(0, events, 500):
        rows: list[NewLog] = []
        for lead in range(start + 1, min(start + 500, events) + 1):
            rows += intake(encode(won_deal_body(lead, "kenesary_fb")), FORM, FormLimits())[0]
        store.insert(rows)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-drain-"))
    databases = {
        name: create_database(f"bench_drain_{name}", work)
        for name in ("edge", "referral", "traffic", "notifier")
    }
    try:
        running = start_stack(databases, work, AMOCRM_DOMAIN="onaiagencykz", WEBHOOK_SECRET="")
        try:
            store = WebhookLogStore(create_engine(databases["edge"], pool_size=2))
            backlog(store, EVENTS)
            started = time.monotonic()
            with store.engine.begin() as conn:
                conn.execute(sa.update(webhook_logs).values(retry_at=sa.func.now()))
            while store.pending_count():
                time.sleep(0.1)
            elapsed = time.monotonic() - started
            store.engine.dispose()
        finally:
            running.stack.stop()
    finally:
        for url in databases.values():
            drop_database(url)
    print(f"edge.worker drained {EVENTS:,} due events in {elapsed:.1f} s: "
          f"{EVENTS / elapsed:,.0f} events/s (stack log: {work / 'stack.log'})")


if __name__ == "__main__":
    main()
