"""RouterService on an ephemeral port, calling the real referral, traffic and
notifier services (each on its own database)."""

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from amoroute.channels import channel
from amoroute.v1 import (
    deal_pb2,
    notifier_pb2,
    notifier_pb2_grpc,
    referral_pb2,
    referral_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
    traffic_pb2,
    traffic_pb2_grpc,
)
from tests.support.fake_telegram import FakeTelegram
from tests.support.services import start_services
from tests.support.stack import free_port

D = router_pb2


@dataclass
class Routers:
    healthy: router_pb2_grpc.RouterServiceStub
    traffic_down: router_pb2_grpc.RouterServiceStub
    traffic: traffic_pb2_grpc.TrafficServiceStub


@pytest.fixture(scope="module")
def routers(make_database) -> Iterator[Routers]:  # type: ignore[no-untyped-def]
    services = start_services(make_database)
    healthy = services.start_router("router", router_leg_timeout_s=2.0)
    # Nothing listens on the traffic address of this one.
    broken = services.start_router(
        "router-traffic-down", traffic_addr=f"localhost:{free_port()}", router_leg_timeout_s=2.0
    )
    channels = [channel(a) for a in (healthy, broken, services.addr("traffic"))]
    yield Routers(
        router_pb2_grpc.RouterServiceStub(channels[0]),
        router_pb2_grpc.RouterServiceStub(channels[1]),
        traffic_pb2_grpc.TrafficServiceStub(channels[2]),
    )
    for ch in channels:
        ch.close()
    services.stop()


def won_deal(lead_id: int, utm_source: str, utm_campaign: str = "") -> deal_pb2.Deal:
    fields = [deal_pb2.CustomField(code="UTM_SOURCE", values=[deal_pb2.CustomFieldValue(value=utm_source)])]
    if utm_campaign:
        fields.append(deal_pb2.CustomField(name="utm_campaign",
                                           values=[deal_pb2.CustomFieldValue(value=utm_campaign)]))
    return deal_pb2.Deal(lead_id=lead_id, account_id=32145678, status_id=142,
                         pipeline_id=10418746, price=1000, custom_fields=fields)


def outcomes(reply: router_pb2.RouteDealResponse) -> dict[str, str]:
    return {leg.leg: router_pb2.LegOutcome.Name(leg.outcome) for leg in reply.legs}


def test_traffic_deal_is_recorded_then_announced_and_repeat_is_duplicate(routers: Routers) -> None:
    first = routers.healthy.RouteDeal(D.RouteDealRequest(deal=won_deal(9001, "kenesary_fb")))
    assert first.route.decision == D.ROUTING_DECISION_TRAFFIC
    assert first.status == D.PROCESSING_STATUS_SUCCESS
    assert outcomes(first) == {"traffic": "LEG_OUTCOME_RECORDED", "notifier": "LEG_OUTCOME_RECORDED"}
    again = routers.healthy.RouteDeal(D.RouteDealRequest(deal=won_deal(9001, "kenesary_fb")))
    assert outcomes(again) == {"traffic": "LEG_OUTCOME_DUPLICATE",
                               "notifier": "LEG_OUTCOME_DUPLICATE"}


def test_explain_route_decides_without_writing(routers: Routers) -> None:
    reply = routers.healthy.ExplainRoute(D.ExplainRouteRequest(deal=won_deal(9002, "kenesary_x")))
    assert reply.route.decision == D.ROUTING_DECISION_TRAFFIC
    assert reply.route.targetologist == "Kenesary"
    listed = routers.traffic.ListSales(traffic_pb2.ListSalesRequest(lead_id=9002))
    assert list(listed.sales) == []


def test_one_failed_leg_is_reported_as_partial_not_hidden(routers: Routers) -> None:
    reply = routers.traffic_down.RouteDeal(
        D.RouteDealRequest(deal=won_deal(9003, "ref_PART1", "kenesary_june"))
    )
    assert reply.route.decision == D.ROUTING_DECISION_BOTH
    assert reply.status == D.PROCESSING_STATUS_PARTIAL
    assert outcomes(reply) == {"referral": "LEG_OUTCOME_RECORDED", "traffic": "LEG_OUTCOME_FAILED"}
    [failed] = [leg for leg in reply.legs if leg.leg == "traffic"]
    assert "UNAVAILABLE" in failed.error


def test_unknown_source_credits_nobody(routers: Routers) -> None:
    reply = routers.healthy.RouteDeal(D.RouteDealRequest(deal=won_deal(9004, "google_organic")))
    assert reply.route.decision == D.ROUTING_DECISION_UNKNOWN
    assert reply.status == D.PROCESSING_STATUS_SUCCESS and list(reply.legs) == []


@pytest.mark.parametrize(
    ("deal", "field"),
    [
        (deal_pb2.Deal(), "deal.lead_id"),
        (deal_pb2.Deal(lead_id=-1), "deal.lead_id"),
        (deal_pb2.Deal(lead_id=1, price=-5), "deal.price"),
        (deal_pb2.Deal(lead_id=1, price=10**15 + 1), "deal.price"),
    ],
)
def test_bad_deal_is_invalid_argument_naming_the_field(routers: Routers, deal, field) -> None:  # type: ignore[no-untyped-def]
    for call in (routers.healthy.RouteDeal, routers.healthy.ExplainRoute):
        request_type = D.RouteDealRequest if call is routers.healthy.RouteDeal else D.ExplainRouteRequest
        with pytest.raises(grpc.RpcError) as err:
            call(request_type(deal=deal))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in err.value.details()


def test_describe_rules_shows_the_pipelines_and_targetologists_in_force(routers: Routers) -> None:
    reply = routers.healthy.DescribeRules(D.DescribeRulesRequest())
    assert list(reply.pipeline_ids) == [10418746]
    assert list(reply.won_status_ids) == [142]
    assert "Kenesary" in reply.targetologists
    # The rules file seeded the router's database: version 1 is in force, no file path.
    assert reply.version == 1 and reply.path == "" and reply.loaded_at.seconds > 0


def test_won_deal_without_utm_is_not_credited_and_asks_for_lead_data(routers: Routers) -> None:
    deal = deal_pb2.Deal(lead_id=9005, account_id=1, status_id=142, pipeline_id=10418746,
                         event="status")
    reply = routers.healthy.RouteDeal(D.RouteDealRequest(deal=deal))
    assert reply.route.needs_lead_data and list(reply.legs) == []


def test_batch_routes_each_deal_as_route_deal_would_and_rejects_only_the_bad_one(
    routers: Routers,
) -> None:
    routers.healthy.RouteDeal(D.RouteDealRequest(deal=won_deal(9101, "kenesary_fb")))
    reply = routers.healthy.BatchRouteDeals(
        D.BatchRouteDealsRequest(
            requests=[
                D.RouteDealRequest(deal=won_deal(9101, "kenesary_fb")),  # routed before
                D.RouteDealRequest(deal=deal_pb2.Deal(lead_id=-3)),
                D.RouteDealRequest(deal=won_deal(9102, "ref_BATCH1", "kenesary_june")),
                D.RouteDealRequest(deal=won_deal(9103, "google_organic")),
                D.RouteDealRequest(deal=won_deal(9104, "kenesary_ig"), skip_legs=["traffic"]),
            ]
        )
    )
    repeat, bad, both, unknown, announce_only = reply.results
    assert outcomes(repeat.response) == {
        "traffic": "LEG_OUTCOME_DUPLICATE",
        "notifier": "LEG_OUTCOME_DUPLICATE",
    }
    assert bad.WhichOneof("result") == "invalid_argument"
    assert bad.invalid_argument.startswith("requests[1].deal.lead_id:")
    assert both.response.route.decision == D.ROUTING_DECISION_BOTH
    assert [leg.leg for leg in both.response.legs] == ["referral", "traffic", "notifier"]
    assert {leg.outcome for leg in both.response.legs} == {D.LEG_OUTCOME_RECORDED}
    assert unknown.response.route.decision == D.ROUTING_DECISION_UNKNOWN
    assert list(unknown.response.legs) == []
    # A sale recorded on an earlier attempt: only its announcement runs.
    assert outcomes(announce_only.response) == {"notifier": "LEG_OUTCOME_RECORDED"}
    sales = routers.traffic.ListSales(traffic_pb2.ListSalesRequest(lead_id=9102)).sales
    assert [s.targetologist for s in sales] == ["Kenesary"]


def test_batch_with_a_service_down_fails_that_leg_of_every_deal(routers: Routers) -> None:
    reply = routers.traffic_down.BatchRouteDeals(
        D.BatchRouteDealsRequest(
            requests=[
                D.RouteDealRequest(deal=won_deal(9201, "ref_DOWN1", "kenesary_a")),
                D.RouteDealRequest(deal=won_deal(9202, "kenesary_b")),
            ]
        )
    )
    partial, failed = (r.response for r in reply.results)
    assert partial.status == D.PROCESSING_STATUS_PARTIAL
    assert outcomes(partial) == {"referral": "LEG_OUTCOME_RECORDED", "traffic": "LEG_OUTCOME_FAILED"}
    # No announcement for a sale that was not recorded.
    assert failed.status == D.PROCESSING_STATUS_ERROR
    assert outcomes(failed) == {"traffic": "LEG_OUTCOME_FAILED"}
    assert "UNAVAILABLE" in failed.legs[0].error


def test_batch_over_the_limit_is_invalid_argument_naming_requests(routers: Routers) -> None:
    request = D.BatchRouteDealsRequest(
        requests=[D.RouteDealRequest(deal=won_deal(1, "x"))] * 501
    )
    with pytest.raises(grpc.RpcError) as err:
        routers.healthy.BatchRouteDeals(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("requests:")


def _status_deal(lead_id: int, status_id: int, old_status_id: int, at: int) -> deal_pb2.Deal:
    deal = won_deal(lead_id, "kenesary_fb")
    deal.status_id, deal.old_status_id = status_id, old_status_id
    deal.updated_at.seconds = at
    return deal


def test_a_lead_twice_in_one_batch_is_routed_in_the_order_its_events_came(
    routers: Routers,
) -> None:
    lost_then_old_won = routers.healthy.BatchRouteDeals(
        D.BatchRouteDealsRequest(
            requests=[
                D.RouteDealRequest(deal=_status_deal(9301, 143, 142, 1_800_000_100)),
                D.RouteDealRequest(deal=_status_deal(9301, 142, 0, 1_800_000_000)),
            ]
        )
    )
    # The older "won" is stored reversed and nothing is announced.
    assert outcomes(lost_then_old_won.results[1].response) == {"traffic": "LEG_OUTCOME_SUPERSEDED"}
    won_then_lost = routers.healthy.BatchRouteDeals(
        D.BatchRouteDealsRequest(
            requests=[
                D.RouteDealRequest(deal=_status_deal(9302, 142, 0, 1_800_000_000)),
                D.RouteDealRequest(deal=_status_deal(9302, 143, 142, 1_800_000_100)),
            ]
        )
    )
    first, second = (r.response for r in won_then_lost.results)
    assert outcomes(first) == {"traffic": "LEG_OUTCOME_RECORDED", "notifier": "LEG_OUTCOME_RECORDED"}
    assert outcomes(second)["traffic"] == "LEG_OUTCOME_REVERSED"
    [sale] = routers.traffic.ListSales(traffic_pb2.ListSalesRequest(lead_id=9302)).sales
    assert sale.reversed_at.seconds == 1_800_000_100


# Re-attribution: routers with the old rules (the shipped file) and new rules
# in front of the same real services, the notifier posting to a Telegram stand-in.

NEW_RULES = """
pipelines: [10418746]
won_status_ids: [142]
referral:
  prefix: "partner_"
  fields: [utm_source]
traffic:
  fields: [utm_source, utm_campaign]
  targetologists:
    - name: Aidana
      patterns: ["kenesary_moved*", "ref_*"]
    - name: Kenesary
      patterns: ["kenesary_*"]
      telegram_chat_id: "-1001234567890"
"""
TELEGRAM_TOKEN = "123456789:AAH-test-token"


@dataclass
class Reattribution:
    old: router_pb2_grpc.RouterServiceStub
    new: router_pb2_grpc.RouterServiceStub
    traffic: traffic_pb2_grpc.TrafficServiceStub
    referral: referral_pb2_grpc.ReferralServiceStub
    notifier: notifier_pb2_grpc.NotifierServiceStub
    telegram: FakeTelegram


@pytest.fixture(scope="module")
def rerouting(make_database, tmp_path_factory) -> Iterator[Reattribution]:  # type: ignore[no-untyped-def]
    rules = tmp_path_factory.mktemp("rules") / "routing_rules.yaml"
    rules.write_text(NEW_RULES, encoding="utf-8")
    with FakeTelegram(token=TELEGRAM_TOKEN) as telegram:
        services = start_services(
            make_database,
            telegram_bot_token=TELEGRAM_TOKEN,
            telegram_api_url=telegram.url,
            telegram_default_chat_id="-1001000000001",
            telegram_allowed_chat_ids="-1001234567890",
            # The module's sales all go to one group: pace it fast enough that each test's
            # message is sent while the test waits for it.
            notifier_group_chat_per_min="600",
        )
        old = services.start_router("router-old", router_leg_timeout_s=5.0)
        new = services.start_router(
            "router-new", routing_rules=str(rules), router_leg_timeout_s=5.0
        )
        addrs = [old, new, *(services.addr(n) for n in ("traffic", "referral", "notifier"))]
        channels = [channel(a) for a in addrs]
        yield Reattribution(
            router_pb2_grpc.RouterServiceStub(channels[0]),
            router_pb2_grpc.RouterServiceStub(channels[1]),
            traffic_pb2_grpc.TrafficServiceStub(channels[2]),
            referral_pb2_grpc.ReferralServiceStub(channels[3]),
            notifier_pb2_grpc.NotifierServiceStub(channels[4]),
            telegram,
        )
        for ch in channels:
            ch.close()
        services.stop()


def _reroute(r: Reattribution, deal: deal_pb2.Deal, announce: bool = False) -> dict[str, str]:
    reply = r.new.RouteDeal(D.RouteDealRequest(deal=deal, reattribution=True, announce=announce))
    assert reply.status == D.PROCESSING_STATUS_SUCCESS
    return outcomes(reply)


def _notifications(r: Reattribution, lead_id: int) -> list[notifier_pb2.Notification]:
    request = notifier_pb2.ListNotificationsRequest(lead_id=lead_id)
    return list(r.notifier.ListNotifications(request).notifications)


def _messages_matching(r: Reattribution, pattern: re.Pattern[str]) -> list[str]:
    return [m.body["text"] for m in r.telegram.delivered if pattern.search(m.body.get("text", ""))]


def test_referral_credit_reattributed_to_traffic_is_withdrawn_and_recorded_unannounced(
    rerouting: Reattribution,
) -> None:
    deal = won_deal(9401, "ref_MOVE1")
    first = rerouting.old.RouteDeal(D.RouteDealRequest(deal=deal))
    assert outcomes(first) == {"referral": "LEG_OUTCOME_RECORDED"}
    assert _reroute(rerouting, deal) == {
        "referral": "LEG_OUTCOME_WITHDRAWN",
        "traffic": "LEG_OUTCOME_RECORDED",
    }
    [conversion] = rerouting.referral.ListConversions(
        referral_pb2.ListConversionsRequest(lead_id=9401)
    ).conversions
    assert conversion.reversal_reason.startswith("re-attributed: ")
    assert "Aidana" in conversion.reversal_reason  # the new route's reason
    [sale] = rerouting.traffic.ListSales(traffic_pb2.ListSalesRequest(lead_id=9401)).sales
    assert sale.targetologist == "Aidana" and not sale.HasField("reversed_at")
    assert _notifications(rerouting, 9401) == []  # nothing announced, so no message
    # A second apply of the same change finds nothing to do.
    assert _reroute(rerouting, deal) == {
        "referral": "LEG_OUTCOME_DUPLICATE",
        "traffic": "LEG_OUTCOME_DUPLICATE",
    }


def test_traffic_credit_reattributed_to_unknown_is_withdrawn(rerouting: Reattribution) -> None:
    deal = won_deal(9402, "aidana_fb")
    rerouting.old.RouteDeal(D.RouteDealRequest(deal=deal))
    assert _reroute(rerouting, deal) == {
        "referral": "LEG_OUTCOME_DUPLICATE",  # nothing to withdraw: already so
        "traffic": "LEG_OUTCOME_WITHDRAWN",
    }
    [sale] = rerouting.traffic.ListSales(traffic_pb2.ListSalesRequest(lead_id=9402)).sales
    assert sale.HasField("reversed_at") and sale.reversal_reason.startswith("re-attributed: ")
    assert _reroute(rerouting, deal) == {
        "referral": "LEG_OUTCOME_DUPLICATE",
        "traffic": "LEG_OUTCOME_DUPLICATE",
    }
    # A normal won event under the new rules credits nobody: the withdrawal stands.
    normal = rerouting.new.RouteDeal(D.RouteDealRequest(deal=deal))
    assert normal.route.decision == D.ROUTING_DECISION_UNKNOWN and list(normal.legs) == []


def test_sale_moved_to_another_targetologist_is_not_announced_unless_asked(
    rerouting: Reattribution,
) -> None:
    deal = won_deal(9403, "kenesary_moved_a")
    routed = rerouting.old.RouteDeal(D.RouteDealRequest(deal=deal))
    assert outcomes(routed)["notifier"] == "LEG_OUTCOME_RECORDED"
    assert _reroute(rerouting, deal) == {
        "referral": "LEG_OUTCOME_DUPLICATE",
        "traffic": "LEG_OUTCOME_REATTRIBUTED",
    }
    [announced] = _notifications(rerouting, 9403)  # Kenesary's, from the first routing
    assert "Kenesary" in announced.text and "Aidana" not in announced.text
    new, old = rerouting.traffic.ListSales(traffic_pb2.ListSalesRequest(lead_id=9403)).sales
    assert (new.targetologist, old.targetologist) == ("Aidana", "Kenesary")
    assert old.reversal_reason == "re-attributed" and old.HasField("reattributed_at")
    # Applied again, even with announce: nothing to do, nothing announced.
    assert _reroute(rerouting, deal, announce=True) == {
        "referral": "LEG_OUTCOME_DUPLICATE",
        "traffic": "LEG_OUTCOME_DUPLICATE",
    }
    # A normal won event later is a duplicate of the new live sale.
    normal = rerouting.new.RouteDeal(D.RouteDealRequest(deal=deal))
    assert outcomes(normal)["traffic"] == "LEG_OUTCOME_DUPLICATE"


def test_sale_newly_credited_by_a_reattribution_is_announced_when_asked(
    rerouting: Reattribution,
) -> None:
    deal = won_deal(9404, "ref_ANNOUNCED")
    rerouting.old.RouteDeal(D.RouteDealRequest(deal=deal))
    assert _reroute(rerouting, deal, announce=True) == {
        "referral": "LEG_OUTCOME_WITHDRAWN",
        "traffic": "LEG_OUTCOME_RECORDED",
        "notifier": "LEG_OUTCOME_RECORDED",
    }
    [notification] = _notifications(rerouting, 9404)
    assert "Aidana" in notification.text
    # Sent alone or, when another sale waits for the same chat, within a digest.
    names_lead = re.compile(r"(ID сделки:</b> |сделка )9404\b")
    deadline = time.monotonic() + 10
    while not _messages_matching(rerouting, names_lead) and time.monotonic() < deadline:
        time.sleep(0.05)
    [message] = _messages_matching(rerouting, names_lead)
    assert "Aidana" in message


def test_batch_honours_the_reattribution_flags_per_request(rerouting: Reattribution) -> None:
    moved, untouched = won_deal(9405, "kenesary_moved_c"), won_deal(9406, "ref_STAYS")
    rerouting.old.BatchRouteDeals(
        D.BatchRouteDealsRequest(requests=[D.RouteDealRequest(deal=d) for d in (moved, untouched)])
    )
    reply = rerouting.new.BatchRouteDeals(
        D.BatchRouteDealsRequest(
            requests=[
                D.RouteDealRequest(deal=moved, reattribution=True),
                # Routed normally under the new rules: the referral credit stays.
                D.RouteDealRequest(deal=untouched),
            ]
        )
    )
    first, second = (r.response for r in reply.results)
    assert outcomes(first) == {
        "referral": "LEG_OUTCOME_DUPLICATE",
        "traffic": "LEG_OUTCOME_REATTRIBUTED",
    }
    assert outcomes(second) == {
        "traffic": "LEG_OUTCOME_RECORDED",
        "notifier": "LEG_OUTCOME_RECORDED",
    }
    [conversion] = rerouting.referral.ListConversions(
        referral_pb2.ListConversionsRequest(lead_id=9406)
    ).conversions
    assert not conversion.HasField("reversed_at")
