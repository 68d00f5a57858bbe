"""BatchExplainRoutes on a real router (its rules in its own database) calling the real
referral, traffic and notifier services: many deals decided under the rules in force and
under candidate rules, nothing written."""

from collections.abc import Iterator

import grpc
import pytest

from amoroute.channels import channel
from amoroute.v1 import deal_pb2, router_pb2, router_pb2_grpc, traffic_pb2, traffic_pb2_grpc
from router_svc.rules import DEFAULT_RULES_PATH
from tests.support.services import Services, start_services

D = router_pb2
SHIPPED = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
# Kenesary also gets the drifted spelling "Kenesary-FB" (patterns are case-insensitive).
WITH_DRIFT = SHIPPED.replace('["kenesary_*", "kenesary"]', '["kenesary_*", "kenesary", "kenesary-fb"]')


def won_deal(lead_id: int, utm_source: str, price: int = 1000) -> deal_pb2.Deal:
    fields = [deal_pb2.CustomField(code="UTM_SOURCE",
                                   values=[deal_pb2.CustomFieldValue(value=utm_source)])]
    return deal_pb2.Deal(lead_id=lead_id, account_id=32145678, status_id=142,
                         pipeline_id=10418746, price=price, custom_fields=fields)


@pytest.fixture(scope="module")
def services(make_database) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    started = start_services(make_database)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def router(services: Services) -> Iterator[router_pb2_grpc.RouterServiceStub]:
    ch = channel(services.start_router("batch-explain-router"))
    yield router_pb2_grpc.RouterServiceStub(ch)
    ch.close()


def refused(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()  # type: ignore[operator]
    return err.value


def test_each_deal_is_decided_under_the_rules_in_force_and_the_candidate(
    router: router_pb2_grpc.RouterServiceStub, services: Services
) -> None:
    deals = [won_deal(88001, "Kenesary-FB"), won_deal(88002, "kenesary_fb"),
             won_deal(88003, "ref_ABC123"), won_deal(88004, "google")]
    reply = router.BatchExplainRoutes(
        D.BatchExplainRoutesRequest(deals=deals, candidate_rules_yaml=WITH_DRIFT), timeout=10)
    assert reply.rules_version == 1
    decided = [(D.RoutingDecision.Name(r.current.decision), r.current.targetologist,
                r.current.referral_code, D.RoutingDecision.Name(r.candidate.decision),
                r.candidate.targetologist) for r in reply.results]
    assert decided == [
        ("ROUTING_DECISION_UNKNOWN", "", "", "ROUTING_DECISION_TRAFFIC", "Kenesary"),
        ("ROUTING_DECISION_TRAFFIC", "Kenesary", "", "ROUTING_DECISION_TRAFFIC", "Kenesary"),
        ("ROUTING_DECISION_REFERRAL", "", "ABC123", "ROUTING_DECISION_REFERRAL", ""),
        ("ROUTING_DECISION_UNKNOWN", "", "", "ROUTING_DECISION_UNKNOWN", ""),
    ]
    # Nothing written: no sale for the lead the candidate would credit, rules unchanged.
    traffic = traffic_pb2_grpc.TrafficServiceStub(channel(services.addr("traffic")))
    assert list(traffic.ListSales(traffic_pb2.ListSalesRequest(lead_id=88001)).sales) == []
    assert router.GetRules(D.GetRulesRequest()).current.version == 1


def test_a_candidate_reading_utm_from_other_fields_decides_from_each_deals_fields(
    router: router_pb2_grpc.RouterServiceStub,
) -> None:
    # The candidate also reads utm_source from the custom field "Канал"; the rules in
    # force do not, so each rules' decision reads the deal's own fields.
    candidate = SHIPPED + '\nutm:\n  extra_fields: {utm_source: ["Канал"]}\n'
    from_channel = won_deal(88031, "")
    from_channel.custom_fields.add(
        id=1402999, name="Канал", values=[deal_pb2.CustomFieldValue(value="kenesary_fb")])
    deals = [from_channel, won_deal(88032, "aidana_ig")]
    reply = router.BatchExplainRoutes(
        D.BatchExplainRoutesRequest(deals=deals, candidate_rules_yaml=candidate), timeout=10)
    decided = [(D.RoutingDecision.Name(r.current.decision), r.current.utm.source,
                D.RoutingDecision.Name(r.candidate.decision), r.candidate.targetologist,
                r.candidate.utm.source) for r in reply.results]
    assert decided == [
        ("ROUTING_DECISION_UNKNOWN", "", "ROUTING_DECISION_TRAFFIC", "Kenesary", "kenesary_fb"),
        ("ROUTING_DECISION_TRAFFIC", "aidana_ig", "ROUTING_DECISION_TRAFFIC", "Aidana",
         "aidana_ig"),
    ]


def test_without_a_candidate_only_the_rules_in_force_decide(
    router: router_pb2_grpc.RouterServiceStub,
) -> None:
    reply = router.BatchExplainRoutes(
        D.BatchExplainRoutesRequest(deals=[won_deal(88011, "aidana_ig")]), timeout=10)
    [result] = reply.results
    assert result.current.targetologist == "Aidana"
    assert not result.HasField("candidate")


def test_bad_input_is_an_invalid_argument_naming_the_field(
    router: router_pb2_grpc.RouterServiceStub,
) -> None:
    deals = [won_deal(88021 + n, "google") for n in range(4)]
    deals[3].lead_id = 0
    error = refused(lambda: router.BatchExplainRoutes(D.BatchExplainRoutesRequest(deals=deals)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("deals[3].lead_id: ")

    bad = SHIPPED.replace("fields: [utm_source, utm_campaign]", "fields: [utm_nowhere]")
    error = refused(lambda: router.BatchExplainRoutes(
        D.BatchExplainRoutesRequest(deals=deals[:1], candidate_rules_yaml=bad)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("candidate_rules_yaml: traffic.fields[0]: ")

    too_many = [won_deal(1 + n, "google") for n in range(1001)]
    error = refused(lambda: router.BatchExplainRoutes(
        D.BatchExplainRoutesRequest(deals=too_many)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("deals: at most 1000")
