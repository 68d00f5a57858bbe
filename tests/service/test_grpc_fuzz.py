"""Random field values into the public gRPC methods: every answer is OK or
INVALID_ARGUMENT naming a field, never an internal error."""

from collections.abc import Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from tests.support.services import start_services

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
TEXT = st.text(max_size=300) | st.sampled_from(
    ["", "ref_", "ref_ABC", "kenesary_fb", "x" * 20000, "\x00", "ref_A\x00B", "kenesary_\x00"]
)
VALUES = st.builds(deal_pb2.CustomFieldValue, value=TEXT, enum_id=INT64)
FIELDS = st.builds(
    deal_pb2.CustomField, id=INT64, name=TEXT,
    code=st.sampled_from(["", "UTM_SOURCE", "UTM_CAMPAIGN", "utm_term"]) | TEXT,
    values=st.lists(VALUES, max_size=3),
)
DEALS = st.builds(
    deal_pb2.Deal, lead_id=INT64, name=TEXT, status_id=st.sampled_from([142, 143, 0]) | INT64,
    old_status_id=INT64, pipeline_id=st.sampled_from([10418746]) | INT64, price=INT64,
    account_id=INT64, account_subdomain=TEXT, custom_fields=st.lists(FIELDS, max_size=4),
    event=st.sampled_from(["status", "add", "delete", "api", ""]) | TEXT,
)
UTM = st.builds(deal_pb2.UtmMarks, source=TEXT, campaign=TEXT)
FUZZ = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}


@pytest.fixture(scope="module")
def stubs(make_database) -> Iterator[dict]:  # type: ignore[no-untyped-def]
    services = start_services(make_database)
    router = services.start_router()
    channels = {n: channel(services.addr(n)) for n in ("referral", "traffic", "notifier")}
    channels["router"] = channel(router)
    yield {
        "router": router_pb2_grpc.RouterServiceStub(channels["router"]),
        "referral": referral_pb2_grpc.ReferralServiceStub(channels["referral"]),
        "traffic": traffic_pb2_grpc.TrafficServiceStub(channels["traffic"]),
        "notifier": notifier_pb2_grpc.NotifierServiceStub(channels["notifier"]),
    }
    for ch in channels.values():
        ch.close()
    services.stop()


def answer_code(call, request) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    try:
        call(request, timeout=10)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            assert ":" in exc.details(), exc.details()  # "<field>: <problem>"
        return exc.code()
    return grpc.StatusCode.OK


@FUZZ
@given(deal=DEALS)
def test_router_answers_random_deals_without_internal_errors(stubs, deal) -> None:  # type: ignore[no-untyped-def]
    assert answer_code(stubs["router"].ExplainRoute, router_pb2.ExplainRouteRequest(deal=deal)) in ALLOWED
    assert answer_code(stubs["router"].RouteDeal, router_pb2.RouteDealRequest(deal=deal)) in ALLOWED


@FUZZ
@given(lead=INT64, account=INT64, amount=INT64, name=TEXT, who=TEXT, code=TEXT, utm=UTM,
       page=st.integers(-5, 5000), token=TEXT)
def test_services_answer_random_fields_without_internal_errors(  # type: ignore[no-untyped-def]
    stubs, lead, account, amount, name, who, code, utm, page, token
) -> None:
    calls = [
        (stubs["traffic"].RecordSale, traffic_pb2.RecordSaleRequest(sale=traffic_pb2.Sale(
            lead_id=lead, account_id=account, amount=amount, deal_name=name, targetologist=who,
            utm=utm))),
        (stubs["traffic"].ReverseSale, traffic_pb2.ReverseSaleRequest(
            lead_id=lead, account_id=account, reason=name)),
        (stubs["traffic"].ListSales, traffic_pb2.ListSalesRequest(
            page_size=page, page_token=token, lead_id=lead, targetologist=who)),
        (stubs["referral"].RecordConversion, referral_pb2.RecordConversionRequest(
            conversion=referral_pb2.Conversion(lead_id=lead, account_id=account, amount=amount,
                                               referral_code=code, deal_name=name, utm=utm))),
        (stubs["referral"].ListConversions, referral_pb2.ListConversionsRequest(
            page_size=page, page_token=token, referral_code=code)),
        (stubs["referral"].GetReferrerStats, referral_pb2.GetReferrerStatsRequest(
            referral_code=code)),
        (stubs["notifier"].Notify, notifier_pb2.NotifyRequest(
            lead_id=lead, account_id=account, amount=amount, deal_name=name, targetologist=who,
            account_subdomain=code, utm=utm, chat_id=token[:40])),
        (stubs["notifier"].ListNotifications, notifier_pb2.ListNotificationsRequest(
            page_size=page, page_token=token, lead_id=lead)),
    ]
    for call, request in calls:
        assert answer_code(call, request) in ALLOWED, (call, request)


@pytest.mark.parametrize("view", [3, -1, 2**31 - 1])
def test_batch_write_in_an_unknown_view_is_rejected_naming_view_and_stores_nothing(  # type: ignore[no-untyped-def]
    stubs, view
) -> None:
    lead = 7_700_000 + view % 1000
    utm = deal_pb2.UtmMarks(source="kenesary_fb")
    batches = [
        (stubs["traffic"].BatchRecordSales, traffic_pb2.BatchRecordSalesRequest(
            requests=[traffic_pb2.RecordSaleRequest(sale=traffic_pb2.Sale(
                lead_id=lead, account_id=1, amount=100, targetologist="Kenesary", utm=utm))],
            view=view)),
        (stubs["referral"].BatchRecordConversions, referral_pb2.BatchRecordConversionsRequest(
            requests=[referral_pb2.RecordConversionRequest(conversion=referral_pb2.Conversion(
                lead_id=lead, account_id=1, amount=100, referral_code="ABC", utm=utm))],
            view=view)),
        (stubs["notifier"].BatchNotify, notifier_pb2.BatchNotifyRequest(
            requests=[notifier_pb2.NotifyRequest(
                lead_id=lead, account_id=1, amount=100, targetologist="Kenesary", utm=utm)],
            view=view)),
    ]
    for call, request in batches:
        with pytest.raises(grpc.RpcError) as caught:
            call(request, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details().startswith(f"view: unknown WriteView {view}")
    stored = [
        stubs["traffic"].ListSales(traffic_pb2.ListSalesRequest(lead_id=lead)).sales,
        stubs["referral"].ListConversions(referral_pb2.ListConversionsRequest(lead_id=lead)).conversions,
        stubs["notifier"].ListNotifications(
            notifier_pb2.ListNotificationsRequest(lead_id=lead)).notifications,
    ]
    assert [list(s) for s in stored] == [[], [], []]
