"""Reconciliation from AmoCRM's events log through the real thing: the stand-in AmoCRM
serving /api/v4/events and /api/v4/leads, the edge app in-process on a migrated database
(PostgreSQL or SQLite) for the webhooks, and a real RouterService with the services
behind it on ephemeral ports."""

import copy
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import falcon.testing
import grpc
import prometheus_client
import pytest
import sqlalchemy as sa

from amoroute.channels import channel
from amoroute.v1 import traffic_pb2, traffic_pb2_grpc
from edge.amocrm_api import AmoCrmClient
from edge.dispatch import Dispatcher
from edge.log_store import (
    WebhookLogStore,
    checkpoints,
    reconciled_events,
    webhook_attempts,
    webhook_logs,
)
from edge.reconcile import EVENTS_CHECKPOINT, Reconciler, ReconcileReport
from tests.admin.helpers import AUTH, FORM, admin_client, migrated_edge_database
from tests.support.fake_amocrm import AMOCRM_HOST, FIXTURES, FakeAmoCrm
from tests.support.forms import encode, won_deal_body
from tests.support.services import Services, start_services
from tests.support.waiting import eventually

TOKEN = "amocrm-events-token"
PIPELINE, WON, LOST = 10418746, 142, 143
IN_WORK = 80123457  # a stage of the pipeline before won


@dataclass
class Rig:
    amocrm: FakeAmoCrm
    logs: WebhookLogStore
    router: grpc.Channel
    traffic: traffic_pb2_grpc.TrafficServiceStub
    client: falcon.testing.TestClient
    database: str
    addrs: dict[str, str]

    def reconciler(self, **options: Any) -> Reconciler:
        """A reconciler as a freshly started worker builds it (its own API client)."""
        api = AmoCrmClient(self.amocrm.url, TOKEN, public_host=AMOCRM_HOST)
        return Reconciler(api, self.logs, Dispatcher(self.router, self.logs), "onaiagencykz",
                          overlap_s=3600, route_timeout_s=10.0, **options)

    def sales(self, lead_id: int) -> list[traffic_pb2.Sale]:
        return list(self.traffic.ListSales(traffic_pb2.ListSalesRequest(lead_id=lead_id)).sales)

    def webhook(self, body: dict[str, str]) -> None:
        """Post a webhook and wait until its event is routed."""
        reply = self.client.simulate_post("/webhook/amocrm", body=encode(body), headers=FORM)
        assert reply.status_code == 200, reply.text
        [log_id] = reply.json["log_ids"]
        assert eventually(lambda: (self.logs.find(log_id) or {}).get("processing_status")
                          == "success")

    def logged(self, lead_id: int) -> list[dict[str, Any]]:
        return self.logs.by_lead(lead_id)


@dataclass
class Base:
    services: Services
    database: str
    addrs: dict[str, str]
    logs: WebhookLogStore
    client: falcon.testing.TestClient


@pytest.fixture(scope="module")
def base(make_database) -> Iterator[Base]:  # type: ignore[no-untyped-def]
    """Services, router and one edge database for the module (each test empties the
    edge's tables and uses lead ids of its own)."""
    running = start_services(make_database)
    addrs = {"router_addr": running.start_router(), "referral_addr": running.addr("referral"),
             "traffic_addr": running.addr("traffic")}
    database = migrated_edge_database(make_database)
    logs = WebhookLogStore(sa.create_engine(database))
    yield Base(running, database, addrs, logs, admin_client(database, **addrs))
    logs.engine.dispose()
    running.stop()


@pytest.fixture
def rig(base: Base) -> Iterator[Rig]:
    with base.logs.engine.begin() as conn:
        for table in (webhook_attempts, webhook_logs, checkpoints, reconciled_events):
            conn.execute(sa.delete(table))
    router = channel(base.addrs["router_addr"])
    traffic = channel(base.addrs["traffic_addr"])
    with FakeAmoCrm(token=TOKEN, leads=[]) as amocrm:
        yield Rig(amocrm, base.logs, router, traffic_pb2_grpc.TrafficServiceStub(traffic),
                  base.client, base.database, base.addrs)
    router.close()
    traffic.close()


def lead(lead_id: int, at: int, status_id: int = WON) -> dict[str, Any]:
    """The fixture lead (utm_source kenesary_fb: a targetologist's sale) as `lead_id`."""
    data = json.loads((FIXTURES / "lead_v4.json").read_text())
    data.update(id=lead_id, name=f"Сделка {lead_id}", status_id=status_id, updated_at=at)
    return copy.deepcopy(data)


def clean(report: ReconcileReport) -> ReconcileReport:
    """The report, once sure the pass met no error."""
    assert report.errors == [], report.errors
    assert report.source == "events"
    return report


def test_a_won_deal_whose_webhook_never_came_is_credited_once(rig: Rig) -> None:
    now = int(time.time())
    rig.amocrm.add_lead(lead(7100001, now - 600))  # moved into won: an event, no webhook

    first = clean(rig.reconciler().run_once())
    assert first.routed == [7100001] and first.reversed == []
    assert first.outcomes == {"success": 1}
    [sale] = rig.sales(7100001)
    assert (sale.targetologist, sale.amount) == ("Kenesary", 150000)
    assert sale.won_at.seconds == now - 600  # the time of the move, from the events log
    [row] = rig.logged(7100001)
    assert (row["source"], row["processing_status"]) == ("reconcile", "success")
    assert row["deal_data"]["api_event"]["lead_id"] == 7100001
    # Leads were read in one batched call, not one call per event.
    fetches = [r for r in rig.amocrm.requests if r.path == "/api/v4/leads"]
    assert [r.values("filter[id][]") for r in fetches] == [["7100001"]]

    # Run again (the window overlaps): nothing changes.
    second = clean(rig.reconciler().run_once())
    assert (second.events_seen, second.events_new, second.routed) == (1, 0, [])
    assert len(rig.logged(7100001)) == 1 and len(rig.sales(7100001)) == 1


def test_a_won_deal_whose_webhook_came_is_left_alone(rig: Rig) -> None:
    now = int(time.time())
    rig.webhook(won_deal_body(7100011, "kenesary_fb", updated_at=now - 300))
    rig.amocrm.add_lead(lead(7100011, now - 300))

    report = clean(rig.reconciler().run_once())
    assert (report.routed, report.by_webhook) == ([], 1)
    assert [r["source"] for r in rig.logged(7100011)] == ["amocrm"]
    assert len(rig.sales(7100011)) == 1


def test_a_won_to_lost_transition_without_webhook_reverses_the_credit(rig: Rig) -> None:
    now = int(time.time())
    rig.amocrm.add_lead(lead(7100021, now - 900, status_id=IN_WORK), status_event=False)
    rig.amocrm.change_status(7100021, PIPELINE, WON, now - 900)
    rig.webhook(won_deal_body(7100021, "kenesary_fb", updated_at=now - 900))
    [sale] = rig.sales(7100021)
    assert not sale.HasField("reversed_at")
    rig.amocrm.change_status(7100021, PIPELINE, LOST, now - 120)  # its webhook never comes

    report = clean(rig.reconciler().run_once())
    assert report.reversed == [7100021]
    assert (report.routed, report.by_webhook) == ([], 1)  # the won one came by webhook
    [sale] = rig.sales(7100021)
    assert sale.reversed_at.seconds == now - 120
    assert f"{WON} -> {LOST}" in sale.reversal_reason
    reversal = [r for r in rig.logged(7100021) if r["source"] == "reconcile"]
    assert [(r["status_id"], r["routing_decision"], r["processing_status"])
            for r in reversal] == [(LOST, "ignored", "success")]

    again = clean(rig.reconciler().run_once())
    assert (again.events_new, again.reversed) == (0, [])
    assert len(rig.logged(7100021)) == 2


def test_a_reversal_whose_webhook_came_is_not_routed_again(rig: Rig) -> None:
    now = int(time.time())
    rig.amocrm.add_lead(lead(7100031, now - 900, status_id=IN_WORK), status_event=False)
    rig.amocrm.change_status(7100031, PIPELINE, WON, now - 900)
    rig.webhook(won_deal_body(7100031, "kenesary_fb", updated_at=now - 900))
    rig.amocrm.change_status(7100031, PIPELINE, LOST, now - 100)
    rig.webhook(won_deal_body(7100031, "kenesary_fb", status_id=LOST, old_status_id=WON,
                              updated_at=now - 100))
    assert rig.sales(7100031)[0].HasField("reversed_at")

    report = clean(rig.reconciler().run_once())
    assert (report.routed, report.reversed, report.by_webhook) == ([], [], 2)
    assert all(r["source"] == "amocrm" for r in rig.logged(7100031))


def test_a_newer_left_won_beats_an_older_won(rig: Rig) -> None:
    """Won at T1 with no webhook, lost at T2 whose webhook came: the won is stale."""
    now = int(time.time())
    rig.amocrm.add_lead(lead(7100041, now - 900, status_id=IN_WORK), status_event=False)
    rig.amocrm.change_status(7100041, PIPELINE, WON, now - 900)
    rig.amocrm.change_status(7100041, PIPELINE, LOST, now - 60)
    rig.webhook(won_deal_body(7100041, "kenesary_fb", status_id=LOST, old_status_id=WON,
                              updated_at=now - 60))

    report = clean(rig.reconciler().run_once())
    assert (report.routed, report.stale, report.by_webhook) == ([], [7100041], 1)
    assert [s for s in rig.sales(7100041) if not s.HasField("reversed_at")] == []


def test_a_deal_won_and_moved_on_before_any_pass_is_never_credited(rig: Rig) -> None:
    """Both moves only in the events log: the newer one rules, and is logged."""
    now = int(time.time())
    rig.amocrm.add_lead(lead(7100051, now - 900, status_id=IN_WORK), status_event=False)
    rig.amocrm.change_status(7100051, PIPELINE, WON, now - 900)
    rig.amocrm.change_status(7100051, PIPELINE, LOST, now - 800)

    report = clean(rig.reconciler().run_once())
    assert (report.stale, report.reversed, report.routed) == ([7100051], [7100051], [])
    assert [s for s in rig.sales(7100051) if not s.HasField("reversed_at")] == []
    assert [r["status_id"] for r in rig.logged(7100051)] == [LOST]


def test_events_are_read_page_by_page_along_next_links(rig: Rig) -> None:
    now = int(time.time())
    ids = list(range(7100061, 7100068))
    for n, lead_id in enumerate(ids):
        rig.amocrm.add_lead(lead(lead_id, now - 1000 + n))

    report = clean(rig.reconciler(events_page_size=3).run_once())
    assert sorted(report.routed) == ids
    pages = [r.values("page") for r in rig.amocrm.requests
             if r.path == "/api/v4/events" and r.values("filter[value_after][leads_statuses]"
                                                        "[0][status_id]")]
    assert pages == [[], ["2"], ["3"]]
    assert all(len(rig.sales(lead_id)) == 1 for lead_id in ids)
    # Every page asked for one type of event into the won status of the pipeline.
    first = next(r for r in rig.amocrm.requests if r.path == "/api/v4/events")
    assert first.values("filter[type]") == ["lead_status_changed"]
    assert first.values("filter[value_after][leads_statuses][0][pipeline_id]") == [str(PIPELINE)]


def test_the_checkpoint_survives_a_worker_restart(rig: Rig) -> None:
    now = int(time.time())
    rig.amocrm.add_lead(lead(7100071, now - 500))
    first = clean(rig.reconciler(clock=lambda: now - 300).run_once())
    assert first.routed == [7100071]
    assert rig.logs.checkpoint(EVENTS_CHECKPOINT) == first.checkpoint == now - 300

    # The worker restarts. Meanwhile one more deal is won, and AmoCRM writes a change
    # that happened before the checkpoint into its log only now.
    rig.amocrm.add_lead(lead(7100072, now - 100))
    rig.amocrm.add_lead(lead(7100073, first.checkpoint - 30))
    restarted = rig.reconciler(clock=lambda: now)
    second = clean(restarted.run_once())
    assert second.updated_from == first.checkpoint - 3600
    assert sorted(second.routed) == [7100072, 7100073]  # nothing skipped
    assert second.events_new == 2  # nothing processed twice
    for lead_id in (7100071, 7100072, 7100073):
        assert len(rig.logged(lead_id)) == 1 and len(rig.sales(lead_id)) == 1
    with rig.logs.engine.connect() as conn:
        handled = conn.execute(sa.select(sa.func.count()).select_from(reconciled_events))
        assert handled.scalar_one() == 3


def test_a_failed_listing_keeps_the_checkpoint_and_the_next_pass_catches_up(rig: Rig) -> None:
    now = int(time.time())
    rig.amocrm.add_lead(lead(7100081, now - 400))
    api = AmoCrmClient(rig.amocrm.url, TOKEN, public_host=AMOCRM_HOST, max_retries=0)
    failing = Reconciler(api, rig.logs, Dispatcher(rig.router, rig.logs), "onaiagencykz")
    rig.amocrm.fail_next(500)
    report = failing.run_once()
    assert report.errors and report.routed == []
    assert rig.logs.checkpoint(EVENTS_CHECKPOINT) == report.updated_from + 3600

    caught_up = clean(rig.reconciler().run_once())
    assert caught_up.routed == [7100081]


def admin_with_api(rig: Rig, **settings: Any) -> falcon.testing.TestClient:
    """The edge app with the AmoCRM API configured (the stand-in)."""
    return admin_client(rig.database, **rig.addrs, amocrm_domain="onaiagencykz",
                        amocrm_api_url=rig.amocrm.url, amocrm_access_token=TOKEN, **settings)


def test_the_admin_reconcile_reports_what_the_events_pass_found_and_fixed(rig: Rig) -> None:
    now = int(time.time())
    rig.amocrm.add_lead(lead(7100091, now - 200))
    client = admin_with_api(rig)
    reply = client.simulate_post("/api/admin/reconcile", headers=AUTH)
    assert reply.status_code == 200, reply.text
    report = reply.json
    assert (report["source"], report["events_seen"], report["events_new"]) == ("events", 1, 1)
    assert (report["routed"], report["reversed"], report["errors"]) == ([7100091], [], [])
    assert eventually(lambda: rig.sales(7100091))


def test_the_leads_pass_still_runs_when_chosen(rig: Rig) -> None:
    now = int(time.time())
    rig.amocrm.add_lead(lead(7100101, now - 200), status_event=False)  # not in the events log
    client = admin_with_api(rig, reconcile_source="leads")
    reply = client.simulate_post("/api/admin/reconcile", headers=AUTH)
    assert reply.status_code == 200, reply.text
    assert (reply.json["source"], reply.json["routed"]) == ("leads", [7100101])
    assert not [r for r in rig.amocrm.requests if r.path == "/api/v4/events"]


def test_a_403_after_429s_stops_calls_and_readiness_says_so(rig: Rig) -> None:
    client = admin_with_api(rig, amocrm_block_pause_s=600)
    assert "blocked" not in client.simulate_get("/readyz").json["details"]["amocrm"]
    rig.amocrm.fail_next(429)
    rig.amocrm.fail_next(403)
    reply = client.simulate_post("/api/admin/reconcile", headers=AUTH)
    assert reply.status_code == 200, reply.text
    [error] = reply.json["errors"]
    assert "AmoCRM blocked the integration" in error and "600 s" in error
    detail = client.simulate_get("/readyz").json["details"]["amocrm"]
    assert detail.startswith("blocked: AmoCRM answered 403 after 429s")
    # The process's own gauge (what /metrics shows depends on whether an earlier test
    # left the multiprocess collector on).
    assert prometheus_client.REGISTRY.get_sample_value("amoroute_amocrm_blocked") == 1.0

    # Every process stays off the API until the pause ends: no request reaches AmoCRM.
    sent = len(rig.amocrm.requests)
    again = admin_with_api(rig).simulate_post("/api/admin/reconcile", headers=AUTH)
    assert "AmoCRM blocks the integration" in again.json["errors"][0]
    assert len(rig.amocrm.requests) == sent


def test_two_passes_at_once_route_each_event_once(rig: Rig) -> None:
    """The worker's schedule and an admin's POST may overlap: each event is marked
    handled by one of them, and only that one logs and routes it."""
    now = int(time.time())
    ids = list(range(7100111, 7100121))
    for n, lead_id in enumerate(ids):
        rig.amocrm.add_lead(lead(lead_id, now - 700 + n))
    reconcilers = [rig.reconciler(), rig.reconciler()]
    reports: list[ReconcileReport] = []
    threads = [threading.Thread(target=lambda r=r: reports.append(r.run_once()))
               for r in reconcilers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(reports) == 2 and all(r.errors == [] for r in reports)
    assert sorted(reports[0].routed + reports[1].routed) == ids
    for lead_id in ids:
        assert len(rig.logged(lead_id)) == 1 and len(rig.sales(lead_id)) == 1


def test_a_deal_moved_on_to_another_pipeline_after_its_credit_is_reversed(rig: Rig) -> None:
    """Won, credited by one pass; then moved into a pipeline the rules do not route
    (the leads pass would never see it again): the next pass reverses the credit."""
    now = int(time.time())
    rig.amocrm.add_lead(lead(7100131, now - 900))
    assert clean(rig.reconciler(clock=lambda: now - 600).run_once()).routed == [7100131]
    rig.amocrm.change_status(7100131, 20000001, 20000005, now - 300)

    report = clean(rig.reconciler(clock=lambda: now).run_once())
    assert (report.reversed, report.routed, report.events_new) == ([7100131], [], 1)
    [sale] = rig.sales(7100131)
    assert sale.reversed_at.seconds == now - 300
