"""Never lose a sale, never count one twice: a frozen router during a burst,
the edge database going away, and several workers at once."""

import json
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from amoroute.channels import channel
from amoroute.v1 import notifier_pb2, notifier_pb2_grpc, traffic_pb2, traffic_pb2_grpc
from edge.log_store import webhook_logs
from tests.support.forms import encode, won_deal_body
from tests.support.stack import RunningStack, start_stack
from tests.support.tcp_proxy import TcpProxy

RULES = """
pipelines: [10418746]
won_status_ids: [142]
referral: {prefix: "ref_", fields: [utm_source]}
traffic:
  fields: [utm_source]
  targetologists:
    - {name: Burst, patterns: ["burst_*"]}
"""
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class Harness:
    def __init__(self, running: RunningStack, proxy: TcpProxy, edge_url: str) -> None:
        self.running = running
        self.proxy = proxy
        self.channels = [
            channel(running.addr("traffic"), running.operator),
            channel(running.addr("notifier"), running.operator),
        ]
        self.traffic = traffic_pb2_grpc.TrafficServiceStub(self.channels[0])
        self.notifier = notifier_pb2_grpc.NotifierServiceStub(self.channels[1])
        self.edge_db = sa.create_engine(edge_url)

    def post(self, client: httpx.Client, lead_id: int) -> tuple[int, float]:
        body = encode(won_deal_body(lead_id, "burst_fb"))
        started = time.monotonic()
        reply = client.post("/webhook/amocrm", content=body,
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
        return reply.status_code, time.monotonic() - started

    def burst(self, leads: list[int], concurrency: int = 16) -> list[tuple[int, float]]:
        with httpx.Client(base_url=self.running.edge_url, timeout=10) as client, \
                ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(lambda lead: self.post(client, lead), leads))

    def credited(self, leads: set[int]) -> list[int]:
        """Lead ids of every credited (not reversed) Burst sale among `leads`, with repeats."""
        found, token = [], ""
        while True:
            page = self.traffic.ListSales(traffic_pb2.ListSalesRequest(
                targetologist="Burst", page_size=1000, page_token=token))
            found += [s.lead_id for s in page.sales if s.lead_id in leads]
            token = page.next_page_token
            if not token:
                return found

    def logged(self, leads: set[int]) -> list[int]:
        with self.edge_db.connect() as conn:
            rows = conn.execute(sa.select(webhook_logs.c.lead_id).where(
                webhook_logs.c.lead_id.in_(leads)))
            return [r.lead_id for r in rows]

    def announced(self, lead_id: int) -> int:
        reply = self.notifier.ListNotifications(
            notifier_pb2.ListNotificationsRequest(lead_id=lead_id))
        return len(reply.notifications)

    def wait_credited(self, leads: set[int], timeout: float = 90) -> list[int]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.credited(leads)
            if set(found) == leads or time.monotonic() > deadline:
                return found
            time.sleep(0.5)

    def close(self) -> None:
        for ch in self.channels:
            ch.close()
        self.edge_db.dispose()


@pytest.fixture(scope="module")
def harness(make_database, tmp_path_factory) -> Iterator[Harness]:  # type: ignore[no-untyped-def]
    edge_url = make_database("edge")
    parsed = sa.engine.make_url(edge_url)
    if parsed.get_backend_name() != "postgresql":
        pytest.skip("the database outage is simulated on a PostgreSQL connection")
    proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    proxied = parsed.set(port=proxy.port).render_as_string(hide_password=False)
    rules = tmp_path_factory.mktemp("rules") / "rules.yaml"
    rules.write_text(RULES)
    running = start_stack(
        {"edge": proxied, **{n: make_database(n) for n in ("router", "referral", "traffic", "notifier")}},
        tmp_path_factory.mktemp("stack"),
        ROUTING_RULES=str(rules),
        WORKER_POLL_S="0.2",
    )
    h = Harness(running, proxy, edge_url)
    try:
        yield h
    finally:
        h.close()
        running.stack.stop()
        proxy.close()


def test_frozen_router_during_a_burst_loses_nothing_and_counts_nothing_twice(harness) -> None:  # type: ignore[no-untyped-def]
    leads = list(range(7_000_001, 7_000_301))
    router = harness.running.stack.procs["router_svc"]
    os.kill(router.pid, signal.SIGSTOP)
    try:
        answers = harness.burst(leads)
    finally:
        os.kill(router.pid, signal.SIGCONT)
    # AmoCRM's duplicates of a tenth of them, after the router is back.
    answers += harness.burst(leads[::10])

    statuses = {status for status, _ in answers}
    slowest = max(elapsed for _, elapsed in answers)
    credited = harness.wait_credited(set(leads))
    logged = harness.logged(set(leads))
    figures = {
        "sent": len(answers), "unique_leads": len(leads), "answered_200": sum(
            s == 200 for s, _ in answers), "slowest_answer_s": round(slowest, 3),
        "logged": len(logged), "credited": len(set(credited)),
        "duplicated": len(credited) - len(set(credited)),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "zero_loss_frozen_router.json").write_text(json.dumps(figures, indent=2))
    assert statuses == {200}, figures
    assert slowest < 2.0, figures
    assert figures["logged"] == figures["sent"], figures
    assert sorted(credited) == leads, figures
    assert all(harness.announced(lead) == 1 for lead in leads[:20])


def test_router_stopped_with_sigterm_under_load_loses_no_request(harness) -> None:  # type: ignore[no-untyped-def]
    """A rolling update of the router: SIGTERM drains its calls in flight, the edge
    keeps answering AmoCRM, a new router comes up and everything is credited once."""
    leads = list(range(7_200_001, 7_200_201))
    stack = harness.running.stack
    with ThreadPoolExecutor(1) as background:
        burst = background.submit(harness.burst, leads, 8)
        time.sleep(1.0)
        stack.procs["router_svc"].send_signal(signal.SIGTERM)
        assert stack.procs["router_svc"].wait(30) == 0  # a clean, drained stop
        stack.start_process("router_svc")
        answers = burst.result()
    assert {status for status, _ in answers} == {200}
    assert max(elapsed for _, elapsed in answers) < 2.0
    assert sorted(harness.wait_credited(set(leads))) == leads


def test_database_down_answers_503_and_the_retried_hook_is_credited_once(harness) -> None:  # type: ignore[no-untyped-def]
    lead = 7_100_001
    harness.proxy.cut()
    try:
        with httpx.Client(base_url=harness.running.edge_url, timeout=10) as client:
            status, elapsed = harness.post(client, lead)
    finally:
        harness.proxy.restore()
    assert status == 503
    assert elapsed < 2.0
    assert harness.credited({lead}) == []
    # AmoCRM retries a 503; now it lands, once.
    with httpx.Client(base_url=harness.running.edge_url, timeout=10) as client:
        assert harness.post(client, lead)[0] == 200
        assert harness.post(client, lead)[0] == 200
    assert harness.wait_credited({lead}) == [lead]
    assert len(harness.logged({lead})) == 2
