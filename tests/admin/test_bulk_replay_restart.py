"""A bulk replay job survives its worker's restart: the whole stack as processes (edge,
`python -m edge.worker`, services), the worker stopped mid-job and started again; the job
finishes with exact counts, every matching event replayed once."""

import signal
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from edge.log_store import webhook_logs
from tests.support.fake_telegram import FakeTelegram
from tests.support.forms import encode, won_deal_body
from tests.support.stack import RunningStack, start_stack
from tests.support.waiting import eventually

TOKEN = "restart-admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


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
            BULK_REPLAY_RATE="5",
        )
        try:
            yield stack
        finally:
            stack.stack.stop()


def test_a_job_survives_a_worker_restart(running: RunningStack) -> None:
    http = httpx.Client(base_url=running.edge_url, timeout=10, headers=AUTH)
    engine = sa.create_engine(running.env["EDGE_DATABASE_URL"])
    try:
        reply = http.post("/webhook/amocrm", content=encode(*(
            won_deal_body(9790000 + n, "kenesary_fb", price=1000, index=n) for n in range(60))),
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert reply.status_code == 200, reply.text
        ids = reply.json()["log_ids"]
        started = http.post("/api/admin/webhook-logs/replay",
                            json={"filters": {"source": "amocrm"}})
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
        assert 0 < stopped["done"] < 60, stopped
        running.stack.start_process("edge.worker")
        assert eventually(lambda: job()["state"] == "done", timeout=60), job()
        done = job()
        assert (done["total"], done["done"], done["failed"]) == (60, 60, 0)
        c = webhook_logs.c
        with engine.connect() as conn:
            replayed = Counter(conn.execute(
                sa.select(c.replay_of).where(c.replay_of.is_not(None))).scalars())
        assert replayed == Counter(ids)
        assert "job released" in running.output()
    finally:
        http.close()
        engine.dispose()
