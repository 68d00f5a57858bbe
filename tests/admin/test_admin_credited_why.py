"""An event's "why credited": the router's reason stored with the outcome, each leg's
credited party and amount, and the request it came in, through real services."""

from collections.abc import Iterator

import pytest

from tests.admin.helpers import AUTH, FORM, admin_client, migrated_edge_database
from tests.admin.test_admin_replay_and_sales import Seeder, Stack
from tests.support.forms import encode, won_deal_body
from tests.support.services import start_services
from tests.support.waiting import eventually

_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(scope="module")
def stack(make_database) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    services = start_services(make_database)
    addr = {name: services.addr(name) for name in ("referral", "traffic", "notifier")}
    router = services.start_router()
    database = migrated_edge_database(make_database)
    client = admin_client(database, router_addr=router, referral_addr=addr["referral"],
                          traffic_addr=addr["traffic"], router_deadline_s=5.0)
    seeder = Seeder(database)
    yield Stack(client, seeder, None, None)  # type: ignore[arg-type]
    seeder.close()
    services.stop()


def test_a_traffic_sale_says_which_pattern_matched_and_who_was_credited(stack: Stack) -> None:
    reply = stack.client.simulate_post(
        "/webhook/amocrm", body=encode(won_deal_body(9300001, "kenesary_fb", price=70000)),
        headers={**FORM, "User-Agent": "amoCRM-Webhooks/3.0", "X-Request-Id": "req-why-1",
                 "traceparent": _TRACEPARENT})
    assert reply.status_code == 200, reply.text
    [log_id] = reply.json["log_ids"]
    assert eventually(lambda: stack._tried(log_id))

    why = stack.get(f"webhook-logs/{log_id}")["why"]
    assert why["decision"] == "traffic"
    assert "kenesary_fb" in why["reason"] and "Kenesary" in why["reason"]
    assert why["targetologist"] == "Kenesary"
    assert {"leg": "traffic", "party": "Kenesary", "amount": 70000,
            "outcome": "recorded"} in why["credits"]
    assert why["utm_source"] == "kenesary_fb"
    assert why["content_type"] == FORM["Content-Type"]
    assert why["user_agent"] == "amoCRM-Webhooks/3.0"
    assert why["request_id"]


def test_a_second_delivery_is_credited_as_a_duplicate(stack: Stack) -> None:
    body = won_deal_body(9300002, "kenesary_ig", price=50000)
    stack.webhook(body)
    [again] = stack.webhook(body)
    credits = stack.get(f"webhook-logs/{again}")["why"]["credits"]
    assert {"leg": "traffic", "party": "Kenesary", "amount": 50000,
            "outcome": "duplicate"} in credits


def test_an_unknown_source_says_no_rule_matched(stack: Stack) -> None:
    [log_id] = stack.webhook(won_deal_body(9300003, "nobody_knows_me", price=1000))
    why = stack.get(f"webhook-logs/{log_id}")["why"]
    assert why["decision"] == "unknown"
    assert why["reason"]
    assert [c for c in why["credits"] if c["outcome"] == "recorded"] == []
    assert why["targetologist"] is None and why["referral_code"] is None


def test_an_event_logged_before_the_reason_was_kept_has_no_reason(stack: Stack) -> None:
    log_id = stack.seed.deal(9300004, "kenesary_fb")
    why = stack.get(f"webhook-logs/{log_id}")["why"]
    assert (why["decision"], why["reason"], why["credits"]) == ("traffic", None, [])
    assert why["request_id"] is None and why["trace_id"] is None
    reply = stack.client.simulate_get("/api/admin/webhook-logs/999999999", headers=AUTH)
    assert reply.status_code == 404
