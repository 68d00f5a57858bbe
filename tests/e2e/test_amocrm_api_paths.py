"""The paths through AmoCRM's API, with a local server standing in for it: a
Digital Pipeline hook (no deal data) routed from the API's lead, a won lead
that never came by webhook found by reconciliation, a disabled hook reported."""

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from amoroute.channels import channel
from amoroute.v1 import traffic_pb2, traffic_pb2_grpc
from edge.log_store import WebhookLogStore, checkpoints
from tests.support.fake_amocrm import FIXTURES, FakeAmoCrm
from tests.support.stack import RunningStack, start_stack

TOKEN = "amocrm-e2e-token"
ADMIN = "admin-token-e2e-0123456789abcdef"


class Harness:
    def __init__(self, running: RunningStack, amocrm: FakeAmoCrm) -> None:
        self.running = running
        self.amocrm = amocrm
        self.http = httpx.Client(base_url=running.edge_url, timeout=10)
        self.channel = channel(running.addr("traffic"), running.operator)
        self.traffic = traffic_pb2_grpc.TrafficServiceStub(self.channel)
        self.engine = sa.create_engine(running.env["EDGE_DATABASE_URL"])
        self.logs = WebhookLogStore(self.engine)

    def sales(self, lead_id: int) -> list:  # type: ignore[type-arg]
        return list(self.traffic.ListSales(traffic_pb2.ListSalesRequest(lead_id=lead_id)).sales)

    def wait(self, check, timeout: float = 30.0):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not (result := check()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return result

    def close(self) -> None:
        self.http.close()
        self.channel.close()
        self.engine.dispose()


@pytest.fixture(scope="module")
def harness(make_database, tmp_path_factory) -> Iterator[Harness]:  # type: ignore[no-untyped-def]
    with FakeAmoCrm(token=TOKEN) as amocrm:
        running = start_stack(
            {n: make_database(n) for n in ("edge", "router", "referral", "traffic", "notifier")},
            tmp_path_factory.mktemp("stack"),
            AMOCRM_DOMAIN="onaiagencykz",
            AMOCRM_API_URL=amocrm.url,
            AMOCRM_ACCESS_TOKEN=TOKEN,
            WORKER_POLL_S="0.2",
            RECONCILE_INTERVAL_S="1",
            ADMIN_TOKEN=ADMIN,
        )
        h = Harness(running, amocrm)
        try:
            yield h
        finally:
            h.close()
            running.stack.stop()


def lead_fixture() -> dict[str, Any]:
    return json.loads((FIXTURES / "lead_v4.json").read_text())


def test_digital_pipeline_hook_is_routed_from_the_api_lead(harness: Harness) -> None:
    body = (Path(FIXTURES) / "dp_status_short.form").read_bytes()
    reply = harness.http.post("/webhook/amocrm", content=body,
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status_code == 200
    [sale] = harness.wait(lambda: harness.sales(24681357))
    assert (sale.targetologist, sale.amount, sale.utm.source) == ("Kenesary", 150000, "kenesary_fb")
    [row] = harness.wait(lambda: [r for r in harness.logs.by_lead(24681357)
                                  if r["processing_status"] == "success"])
    assert row["source"] == "amocrm"
    assert row["deal_data"]["api_lead"]["id"] == 24681357
    fetches = [r for r in harness.amocrm.requests if r.path == "/api/v4/leads"
               and r.values("filter[id][]") == ["24681357"]]
    assert fetches, "the lead was not read with a batched filter[id][] call"


def test_reconciliation_credits_a_won_lead_that_never_came_by_webhook(harness: Harness) -> None:
    lost = copy.deepcopy(lead_fixture())
    lost.update(id=31000001, name="Пропущенная сделка", updated_at=int(time.time()) - 60)
    harness.amocrm.add_lead(lost)
    [sale] = harness.wait(lambda: harness.sales(31000001))
    assert sale.targetologist == "Kenesary"
    # The sale is recorded a moment before the edge records the outcome.
    [row] = harness.wait(lambda: [r for r in harness.logs.by_lead(31000001)
                                  if r["processing_status"] == "success"])
    assert row["source"] == "reconcile"
    # Later passes see the lead again (overlap) and leave it alone.
    time.sleep(2.5)
    assert len(harness.logs.by_lead(31000001)) == 1
    assert len(harness.sales(31000001)) == 1


def test_reconciliation_reports_a_hook_amocrm_has_disabled(harness: Harness) -> None:
    harness.amocrm.set_webhooks([{
        "id": 7, "destination": "https://amoroute.example/webhook/amocrm/long-random-secret",
        "disabled": True, "settings": ["status_lead"],
    }])
    def report() -> dict[str, Any] | None:
        with harness.engine.connect() as conn:
            return conn.execute(sa.select(checkpoints.c.last_report).where(
                checkpoints.c.name == "reconcile")).scalar_one_or_none()

    found = harness.wait(lambda: (r := report()) and r.get("hook_disabled") and r)
    assert found["hook_disabled"] is True  # the fake lists one disabled hook of ours
    assert all("long-random-secret" not in h["destination"] for h in found["hooks"])
    metrics = httpx.get(
        f"http://127.0.0.1:{harness.running.stack.metrics_ports['edge.worker']}/metrics").text
    assert "amoroute_amocrm_hook_disabled 1.0" in metrics
    assert "amoroute_pending_events" in metrics


def test_admin_reconcile_runs_a_pass_now_and_reports_it(harness: Harness) -> None:
    fresh = copy.deepcopy(lead_fixture())
    fresh.update(id=31000002, updated_at=int(time.time()) - 30)
    harness.amocrm.add_lead(fresh)
    reply = harness.http.post("/api/admin/reconcile",
                              headers={"Authorization": f"Bearer {ADMIN}"})
    assert reply.status_code == 200, reply.text
    report = reply.json()
    # The worker's own schedule may have routed the lead first: either way it is seen.
    assert report["leads_seen"] >= 1 and report["errors"] == []
    assert set(report) >= {"routed", "already_routed", "hooks", "hook_disabled", "checkpoint"}
    assert harness.wait(lambda: harness.sales(31000002))
    refused = harness.http.post("/api/admin/reconcile")
    assert refused.status_code == 401
