"""Every process started for real, on PostgreSQL (or SQLite), with a local
HTTP server standing in for the Telegram Bot API."""

import time
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from amoroute.channels import channel
from amoroute.v1 import (
    notifier_pb2_grpc,
    referral_pb2_grpc,
    router_pb2_grpc,
    traffic_pb2_grpc,
)
from edge.log_store import WebhookLogStore, webhook_logs
from tests.support.fake_telegram import FakeTelegram
from tests.support.stack import RunningStack, start_stack

BOT_TOKEN = "123456:e2e-test-token"


class Clients:
    """Everything a test needs to drive and inspect the running stack."""

    def __init__(self, running: RunningStack, telegram: FakeTelegram) -> None:
        self.running = running
        self.telegram = telegram
        self.http = httpx.Client(base_url=running.edge_url, timeout=10)
        self.channels = {n: channel(running.addr(n), running.operator) for n in ("router", "referral", "traffic",
                                                                "notifier")}
        self.router = router_pb2_grpc.RouterServiceStub(self.channels["router"])
        self.referral = referral_pb2_grpc.ReferralServiceStub(self.channels["referral"])
        self.traffic = traffic_pb2_grpc.TrafficServiceStub(self.channels["traffic"])
        self.notifier = notifier_pb2_grpc.NotifierServiceStub(self.channels["notifier"])
        self.engine = sa.create_engine(running.env["EDGE_DATABASE_URL"])
        self.logs = WebhookLogStore(self.engine)

    def post_webhook(self, body: bytes, path: str = "/webhook/amocrm") -> httpx.Response:
        return self.http.post(
            path, content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "User-Agent": "amoCRM-WebHook-client/1.0"},
        )

    def log_rows(self, lead_id: int) -> list[dict]:
        return self.logs.by_lead(lead_id)

    def settled_logs(self, lead_id: int, timeout: float = 30.0) -> list[dict]:
        """The lead's log rows once none is waiting for a retry: a cold or busy
        service can miss the webhook's deadline, and the worker finishes it."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.log_rows(lead_id)
            if all(r["retry_at"] is None for r in rows) or time.monotonic() > deadline:
                return rows
            time.sleep(0.2)

    def newest_log(self) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(webhook_logs).order_by(webhook_logs.c.id.desc())).first()
        assert row is not None
        return dict(row._mapping)

    def close(self) -> None:
        self.http.close()
        for ch in self.channels.values():
            ch.close()
        self.engine.dispose()


@pytest.fixture(scope="module")
def e2e(make_database, tmp_path_factory) -> Iterator[Clients]:  # type: ignore[no-untyped-def]
    with FakeTelegram() as telegram:
        running = start_stack(
            {n: make_database(n) for n in ("edge", "router", "referral", "traffic", "notifier")},
            tmp_path_factory.mktemp("stack"),
            TELEGRAM_API_URL=telegram.url,
            TELEGRAM_BOT_TOKEN=BOT_TOKEN,
            AMOCRM_DOMAIN="onaiagencykz",
        )
        clients = Clients(running, telegram)
        try:
            yield clients
        finally:
            clients.close()
            running.stack.stop()
