"""The re-attribution preview through real services: the edge app in-process routing
webhooks through a real RouterService (rules in its own database) and the referral,
traffic and notifier services; the preview asks the router's BatchExplainRoutes."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import falcon.testing
import pytest
import sqlalchemy as sa

from amoroute.channels import channel
from amoroute.v1 import router_pb2, router_pb2_grpc, traffic_pb2, traffic_pb2_grpc
from edge.log_store import webhook_logs
from router_svc.rules import DEFAULT_RULES_PATH
from tests.admin.helpers import AUTH, FORM, Seeder, admin_client, migrated_edge_database
from tests.support.forms import encode, won_deal_body
from tests.support.services import start_services
from tests.support.waiting import eventually

PATH = "/api/admin/reattribution/preview"
SHIPPED = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
# Kenesary also gets the drifted spelling "Kenesary-FB" (patterns are case-insensitive).
WITH_DRIFT = SHIPPED.replace(
    '["kenesary_*", "kenesary"]', '["kenesary_*", "kenesary", "kenesary-fb"]'
)
OLD = datetime(2020, 3, 1, tzinfo=UTC)


@dataclass
class Stack:
    client: falcon.testing.TestClient
    seed: Seeder
    router: router_pb2_grpc.RouterServiceStub
    traffic: traffic_pb2_grpc.TrafficServiceStub
    since: datetime
    log_ids: dict[str, int]

    def webhook(self, lead: dict[str, str]) -> int:
        reply = self.client.simulate_post("/webhook/amocrm", body=encode(lead), headers=FORM)
        assert reply.status_code == 200, reply.text
        [log_id] = reply.json["log_ids"]
        assert eventually(lambda: self.seed.store.find(log_id)["processing_status"]
                          == "success"), f"{log_id} not routed"
        return log_id

    def preview(self, **body: object) -> falcon.testing.Result:
        body = {"yaml": WITH_DRIFT, "received_from": self.since.isoformat(),
                "received_to": (datetime.now(UTC) + timedelta(hours=1)).isoformat(), **body}
        return self.client.simulate_post(PATH, json=body, headers=AUTH)

    def ok(self, **body: object) -> dict:
        reply = self.preview(**body)
        assert reply.status_code == 200, reply.text
        return reply.json


@pytest.fixture(scope="module")
def stack(make_database) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    services = start_services(make_database)
    router = services.start_router()
    database = migrated_edge_database(make_database)
    client = admin_client(database, router_addr=router, referral_addr=services.addr("referral"),
                          traffic_addr=services.addr("traffic"), router_deadline_s=5.0)
    channels = [channel(router), channel(services.addr("traffic"))]
    seed = Seeder(database)
    since = datetime.now(UTC) - timedelta(minutes=1)
    stack = Stack(client, seed, router_pb2_grpc.RouterServiceStub(channels[0]),
                  traffic_pb2_grpc.TrafficServiceStub(channels[1]), since, {})
    leads = {
        "kenesary_fb": won_deal_body(91001, "kenesary_fb", price=100_000),
        "Kenesary-FB": won_deal_body(91002, "Kenesary-FB", price=250_000),
        "ref_ABC123": won_deal_body(91003, "ref_ABC123", price=70_000),
        "google": won_deal_body(91004, "google", price=30_000),
        # One lead, two events: the newer one (Aidana's) is the deal.
        "older": won_deal_body(91005, "Kenesary-FB", price=1_000, updated_at=1750690000),
        "newer": won_deal_body(91005, "aidana_fb", price=5_000, updated_at=1750694400),
        # Received long ago: outside the range of every preview but one.
        "old": won_deal_body(91006, "Kenesary-FB", price=9_000),
    }
    for name, lead in leads.items():
        stack.log_ids[name] = stack.webhook(lead)
    seed.set(stack.log_ids["old"], received_at=OLD)
    yield stack
    seed.close()
    for ch in channels:
        ch.close()
    services.stop()


def totals(answer: dict) -> dict[str, tuple[int, int, int, int, int, int]]:
    return {t["party"]: (t["before"]["count"], t["before"]["revenue"], t["after"]["count"],
                         t["after"]["revenue"], t["diff"]["count"], t["diff"]["revenue"])
            for t in answer["totals"]}


def counts(seed: Seeder) -> tuple[int, int]:
    with seed.engine.connect() as conn:
        return (conn.execute(sa.select(sa.func.count()).select_from(webhook_logs)).scalar_one(),
                conn.execute(sa.select(sa.func.max(webhook_logs.c.id))).scalar_one())


def test_a_drifted_source_moves_from_unknown_to_its_targetologist_with_its_amount(
    stack: Stack,
) -> None:
    logs_before = counts(stack.seed)
    answer = stack.ok()
    assert answer["rules_version"] == 1
    assert (answer["events"], answer["changed"], answer["changes_total"]) == (5, 1, 1)
    [change] = answer["changes"]
    assert (change["log_id"], change["lead_id"], change["amount"]) == (
        stack.log_ids["Kenesary-FB"], 91002, 250_000)
    assert (change["before"]["decision"], change["before"]["parties"]) == ("unknown", ["unknown"])
    assert (change["after"]["decision"], change["after"]["parties"]) == (
        "traffic", ["traffic:Kenesary"])
    assert "kenesary-fb" in change["after"]["reason"]
    assert totals(answer) == {
        "traffic:Kenesary": (1, 100_000, 2, 350_000, 1, 250_000),
        "unknown": (2, 280_000, 1, 30_000, -1, -250_000),
        "referral:ABC123": (1, 70_000, 1, 70_000, 0, 0),
        # The lead with two events counts once, by its newest.
        "traffic:Aidana": (1, 5_000, 1, 5_000, 0, 0),
    }
    assert [t["party"] for t in answer["totals"]][:2] == ["traffic:Kenesary", "unknown"]
    assert answer["duration_ms"] >= 0
    # Nothing written: no log, no credit, no rules version.
    assert counts(stack.seed) == logs_before
    sales = stack.traffic.ListSales(traffic_pb2.ListSalesRequest(lead_id=91002)).sales
    assert list(sales) == []
    assert stack.router.GetRules(router_pb2.GetRulesRequest()).current.version == 1


def test_the_range_and_the_filters_narrow_the_deals(stack: Stack) -> None:
    only_old = stack.ok(received_from="2020-01-01T00:00:00Z", received_to="2020-12-31T00:00:00Z")
    assert (only_old["events"], only_old["changed"]) == (1, 1)
    assert only_old["changes"][0]["lead_id"] == 91006
    assert only_old["changes"][0]["amount"] == 9_000

    searched = stack.ok(filters={"q": "kenesary"})
    # 91001 and 91002; lead 91005's newest event (aidana_fb) does not match, and its
    # older one is never taken in its place.
    assert searched["events"] == 2
    assert [c["lead_id"] for c in searched["changes"]] == [91002]

    routed = stack.ok(filters={"routing": ["referral"], "source": "amocrm"})
    assert routed["events"] == 1 and routed["changed"] == 0
    assert totals(routed) == {"referral:ABC123": (1, 70_000, 1, 70_000, 0, 0)}

    one = stack.ok(filters={"lead_id": 91004, "status": "success"})
    assert one["events"] == 1 and totals(one)["unknown"][:2] == (1, 30_000)

    none = stack.ok(filters={"status": ["error"]})
    assert (none["events"], none["totals"], none["rules_version"]) == (0, [], 1)


def test_the_rules_in_force_decide_before_and_unchanged_rules_change_nothing(
    stack: Stack,
) -> None:
    answer = stack.ok(yaml=SHIPPED)
    assert (answer["events"], answer["changed"], answer["changes"]) == (5, 0, [])
    assert all(t["diff"] == {"count": 0, "revenue": 0} for t in answer["totals"])


@pytest.mark.parametrize(("body", "field"), [
    ({"yaml": ""}, "yaml"),
    ({"yaml": 5}, "yaml"),
    ({"yaml": SHIPPED.replace('["aidana_*"]', "[42]")},
     "yaml: traffic.targetologists[1].patterns[0]"),
    ({"received_from": "yesterday"}, "received_from"),
    ({"received_from": None}, "received_from"),
    ({"received_to": "2000-01-01T00:00:00Z"}, "received_to"),
    ({"filters": {"status": "lost"}}, "filters.status"),
    ({"filters": {"lead_id": "x"}}, "filters.lead_id"),
    ({"filters": {"lead_id": True}}, "filters.lead_id"),
    ({"filters": {"received_from": "2020-01-01"}}, "filters.received_from"),
    ({"filters": {"source": "Not A Source"}}, "filters.source"),
    ({"filters": ["q"]}, "filters"),
    ({"dry_run": True}, "dry_run"),
])
def test_bad_input_is_a_400_naming_the_field(stack: Stack, body: dict, field: str) -> None:
    reply = stack.preview(**body)
    assert reply.status_code == 400, reply.text
    assert reply.json["description"].startswith(f"{field}: "), reply.json


def test_a_body_that_is_not_a_json_object_is_a_400(stack: Stack) -> None:
    reply = stack.client.simulate_post(PATH, body="[1]", headers={
        **AUTH, "Content-Type": "application/json"})
    assert reply.status_code == 400
    assert reply.json["description"].startswith("body: ")


def test_without_the_admin_token_it_is_refused(stack: Stack) -> None:
    reply = stack.client.simulate_post(PATH, json={"yaml": WITH_DRIFT})
    assert reply.status_code == 401


def test_a_router_that_does_not_answer_is_a_503(make_database) -> None:  # type: ignore[no-untyped-def]
    client = admin_client(migrated_edge_database(make_database), router_addr="127.0.0.1:9")
    reply = client.simulate_post(PATH, headers=AUTH, json={
        "yaml": WITH_DRIFT, "received_from": "2025-01-01", "received_to": "2025-02-01"})
    assert reply.status_code == 503, reply.text
    assert "router_svc" in reply.json["description"]
