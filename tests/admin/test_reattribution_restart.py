"""A re-attribution job survives its worker's restart: the whole stack as processes (edge,
`python -m edge.worker`, services), the worker stopped mid-job and started again; the job
finishes with exact counts, every changed lead re-routed once and credited once."""

import signal
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from edge.log_store import webhook_logs
from router_svc.rules import DEFAULT_RULES_PATH
from tests.support.fake_telegram import FakeTelegram
from tests.support.forms import encode, won_deal_body
from tests.support.stack import RunningStack, start_stack
from tests.support.waiting import eventually

TOKEN = "reattribution-restart-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SHIPPED = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
WITH_DRIFT = SHIPPED.replace(
    '["kenesary_*", "kenesary"]', '["kenesary_*", "kenesary", "kenesary-fb"]'
)
LEADS = 30


@pytest.fixture
def running(make_database, tmp_path_factory) -> Iterator[RunningStack]:  # type: ignore[no-untyped-def]
    with FakeTelegram() as telegram:
        stack = start_stack(
            {n: make_database(n) for n in ("edge", "router", "referral", "traffic", "notifier")},
            tmp_path_factory.mktemp("stack"),
            TELEGRAM_API_URL=telegram.url,
            TELEGRAM_BOT_TOKEN="123456:restart-test",
            AMOCRM_DOMAIN="onaiagencykz",
            ADMIN_TOKEN=TOKEN,
            # Slow enough that the worker is stopped mid-job.
            BULK_REPLAY_RATE="3",
        )
        try:
            yield stack
        finally:
            stack.stack.stop()


def test_a_reattribution_survives_a_worker_restart(running: RunningStack) -> None:
    http = httpx.Client(base_url=running.edge_url, timeout=30, headers=AUTH)
    engine = sa.create_engine(running.env["EDGE_DATABASE_URL"])
    c = webhook_logs.c
    try:
        since = datetime.now(UTC) - timedelta(minutes=1)
        reply = http.post("/webhook/amocrm", content=encode(*(
            won_deal_body(9890000 + n, "Kenesary-FB", price=1000, index=n)
            for n in range(LEADS))),
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert reply.status_code == 200, reply.text
        ids = reply.json()["log_ids"]

        def routed() -> int:
            with engine.connect() as conn:
                return conn.execute(sa.select(sa.func.count()).select_from(webhook_logs).where(
                    c.id.in_(ids), c.routing_decision == "unknown")).scalar_one()

        assert eventually(lambda: routed() == LEADS, timeout=30)
        started = http.post("/api/admin/reattribution", json={
            "yaml": WITH_DRIFT, "expected_version": 1, "comment": "Kenesary-FB",
            "received_from": since.isoformat(),
            "received_to": (datetime.now(UTC) + timedelta(hours=1)).isoformat()})
        assert started.status_code == 202, started.text
        job_url = started.headers["location"]

        def job() -> dict:
            return http.get(job_url).json()

        assert eventually(lambda: job()["done"] > 0, timeout=30)
        worker = running.stack.procs["edge.worker"]
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        stopped = job()
        assert stopped["state"] == "running"
        assert 0 < stopped["done"] < LEADS, stopped
        running.stack.start_process("edge.worker")
        assert eventually(lambda: job()["state"] == "done", timeout=90), job()
        done = job()
        assert (done["total"], done["done"], done["failed"]) == (LEADS, LEADS, 0)
        assert done["changes"] == {"credited": LEADS, "reattributed": 0, "withdrawn": 0}

        def reattributed() -> list[tuple[int, str]]:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(
                    sa.select(c.replay_of, c.processing_status).where(c.source == "reattribution"))]

        assert eventually(lambda: all(s == "success" for _, s in reattributed()), timeout=60)
        assert Counter(r for r, _ in reattributed()) == Counter(ids)
        stats = http.get("/api/admin/sales/traffic").json()["items"]
        assert [(s["targetologist"], s["sales"], s["revenue"]) for s in stats
                if s["targetologist"] == "Kenesary"] == [("Kenesary", LEADS, LEADS * 1000)]
        # Applied again: nothing to do.
        again = http.post("/api/admin/reattribution", json={
            "yaml": WITH_DRIFT, "expected_version": 2,
            "received_from": since.isoformat(),
            "received_to": (datetime.now(UTC) + timedelta(hours=1)).isoformat()})
        assert again.status_code == 200, again.text
        assert again.json()["job"] is None
    finally:
        http.close()
        engine.dispose()
