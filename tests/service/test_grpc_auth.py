"""Caller authentication (GRPC_AUTH_TOKENS) on real servers on ephemeral ports:
who may call what, and what stays open to everyone."""

from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from amoroute.callers import EDGE, OPERATOR, ROUTER, CallerCredentials
from amoroute.channels import channel
from amoroute.db import create_engine
from amoroute.grpc_server import Registration, start_server
from amoroute.v1 import (
    deal_pb2,
    notifier_pb2,
    referral_pb2,
    router_pb2,
    router_pb2_grpc,
    traffic_pb2,
    traffic_pb2_grpc,
)
from tests.support.services import Services, start_services
from traffic_svc import server
from traffic_svc.service import TrafficService
from traffic_svc.settings import Settings as TrafficSettings
from traffic_svc.store import SalesStore

TOKENS = {ROUTER: "router-token-0123456789abcdef", EDGE: "edge-token-0123456789abcdef",
          OPERATOR: "operator-token-0123456789abcdef"}
GRPC_AUTH_TOKENS = ",".join(f"{caller}:{token}" for caller, token in TOKENS.items())


@pytest.fixture(scope="module")
def services(make_database) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    started = start_services(make_database, common={"grpc_auth_tokens": GRPC_AUTH_TOKENS})
    started.start_router()
    yield started
    started.stop()


def _as(caller: str | None, token: str = "") -> CallerCredentials:
    return CallerCredentials(token=TOKENS[caller] if caller else token)


def _sale(lead_id: int) -> traffic_pb2.RecordSaleRequest:
    return traffic_pb2.RecordSaleRequest(sale=traffic_pb2.Sale(
        lead_id=lead_id, account_id=1, amount=10**15, targetologist="Kenesary"))


def _code(call) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code()


@pytest.mark.parametrize("token", ["", "not-a-token", TOKENS[EDGE][:-1]])
def test_a_call_without_a_known_token_is_unauthenticated(services: Services, token: str) -> None:
    with channel(services.addr("traffic"), _as(None, token)) as ch:
        stub = traffic_pb2_grpc.TrafficServiceStub(ch)
        assert _code(lambda: stub.ListSales(traffic_pb2.ListSalesRequest(), timeout=5)) == (
            grpc.StatusCode.UNAUTHENTICATED)
        assert _code(lambda: stub.RecordSale(_sale(1), timeout=5)) == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("service", "method", "request_type"),
    [("traffic", "RecordSale", traffic_pb2.RecordSaleRequest),
     ("traffic", "ReverseSale", traffic_pb2.ReverseSaleRequest),
     ("referral", "UpsertPartner", referral_pb2.UpsertPartnerRequest),
     ("referral", "RecordConversion", referral_pb2.RecordConversionRequest),
     ("notifier", "Notify", notifier_pb2.NotifyRequest)],
)
@pytest.mark.parametrize("caller", [EDGE, OPERATOR, ROUTER])
def test_each_write_is_open_only_to_the_callers_that_need_it(
    services: Services, service: str, method: str, request_type: type, caller: str
) -> None:
    # Partners are set by a person: the operator, or an admin through the edge.
    allowed = {"UpsertPartner": (EDGE, OPERATOR)}.get(method, (ROUTER,))
    name = {"traffic": "TrafficService", "referral": "ReferralService",
            "notifier": "NotifierService"}[service]
    with channel(services.addr(service), _as(caller)) as ch:
        call = ch.unary_unary(f"/amoroute.v1.{name}/{method}",
                              request_serializer=request_type.SerializeToString)
        with pytest.raises(grpc.RpcError) as err:
            call(request_type(), timeout=5)  # an empty request: refused or INVALID_ARGUMENT
    if caller in allowed:
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    else:
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert f"caller {caller} may not call /amoroute.v1.{name}/{method}" in err.value.details()


def test_the_router_records_and_the_edge_and_operator_read(services: Services) -> None:
    with channel(services.addr("traffic"), _as(ROUTER)) as ch:
        assert not traffic_pb2_grpc.TrafficServiceStub(ch).RecordSale(_sale(71), timeout=5).duplicate
    for caller in (EDGE, OPERATOR):
        with channel(services.addr("traffic"), _as(caller)) as ch:
            listed = traffic_pb2_grpc.TrafficServiceStub(ch).ListSales(
                traffic_pb2.ListSalesRequest(lead_id=71), timeout=5)
            assert [s.lead_id for s in listed.sales] == [71]


def test_the_edge_routes_through_the_router_which_calls_on_with_its_own_token(
    services: Services,
) -> None:
    deal = deal_pb2.Deal(lead_id=72, account_id=1, status_id=142, pipeline_id=10418746, price=5,
                         custom_fields=[deal_pb2.CustomField(
                             code="UTM_SOURCE", values=[deal_pb2.CustomFieldValue(value="kenesary")])])
    with channel(services.addr("router"), _as(EDGE)) as ch:
        reply = router_pb2_grpc.RouterServiceStub(ch).RouteDeal(
            router_pb2.RouteDealRequest(deal=deal), timeout=10)
    assert reply.status == router_pb2.PROCESSING_STATUS_SUCCESS
    assert {leg.leg: leg.outcome for leg in reply.legs} == {
        "traffic": router_pb2.LEG_OUTCOME_RECORDED, "notifier": router_pb2.LEG_OUTCOME_RECORDED}
    with channel(services.addr("router"), _as(ROUTER)) as ch, pytest.raises(grpc.RpcError) as err:
        router_pb2_grpc.RouterServiceStub(ch).RouteDeal(router_pb2.RouteDealRequest(deal=deal))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("name", ["router", "referral", "traffic", "notifier"])
def test_health_and_reflection_stay_open_without_a_token(services: Services, name: str) -> None:
    with channel(services.addr(name)) as ch:
        health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        listed = next(reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5))
        assert f"amoroute.v1.{name.capitalize()}Service" in {
            s.name for s in listed.list_services_response.service}


@pytest.mark.parametrize("tokens", ["", GRPC_AUTH_TOKENS])
def test_a_method_missing_from_the_table_is_refused_to_everyone(make_database, tokens: str) -> None:  # type: ignore[no-untyped-def]
    settings = TrafficSettings(traffic_database_url=make_database("traffic_partial"),
                               grpc_auth_tokens=tokens)
    server.upgrade_database(settings)
    store = SalesStore(create_engine(settings.traffic_database_url))
    running = start_server(
        [Registration(TrafficService(store),
                      traffic_pb2_grpc.add_TrafficServiceServicer_to_server,
                      "amoroute.v1.TrafficService", {"ListSales": (OPERATOR,)})],
        port=0, settings=settings)
    try:
        with channel(f"127.0.0.1:{running.port}", _as(OPERATOR)) as ch:
            stub = traffic_pb2_grpc.TrafficServiceStub(ch)
            stub.ListSales(traffic_pb2.ListSalesRequest(), timeout=5)
            with pytest.raises(grpc.RpcError) as err:
                stub.GetTargetologistStats(traffic_pb2.GetTargetologistStatsRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "is open to no caller" in err.value.details()
    finally:
        running.stop(0)


def test_a_table_naming_an_unknown_method_or_caller_stops_the_start() -> None:
    settings = TrafficSettings()
    for table, problem in [({"RecordSales": (ROUTER,)}, "unknown method 'RecordSales'"),
                           ({"RecordSale": ("routre",)}, r"names \['routre'\]")]:
        with pytest.raises(ValueError, match=problem):
            start_server([Registration(object(), lambda *_: None, "amoroute.v1.TrafficService",
                                       table)], port=0, settings=settings)
