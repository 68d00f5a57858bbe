"""Every gRPC method that takes a Timestamp or a page_token answers INVALID_ARGUMENT naming
the field for a value amoroute cannot represent, never INTERNAL (issue #8, point 6): real
servers on ephemeral ports, one table over every such field."""

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

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

WHEN = 1_750_000_000
# (seconds, nanos) no Timestamp field accepts, and the suffix the error names.
BAD_TIMES = {
    "seconds 2^62": (2**62, 0, ""),
    "year 10000": (253_402_300_800, 0, ""),
    "before 1970": (-1, 0, ""),
    "nanos -5": (WHEN, -5, ".nanos"),
    "nanos 2e9": (WHEN, 2_000_000_000, ".nanos"),
}
BAD_TOKENS = {
    "id 2^63": base64.urlsafe_b64encode(f"id:{2**63}".encode()).decode(),
    "id 2^63 unencoded": f"id:{2**63}",
    "negative id": base64.urlsafe_b64encode(b"id:-1").decode(),
}


@dataclass
class Stubs:
    referral: referral_pb2_grpc.ReferralServiceStub
    traffic: traffic_pb2_grpc.TrafficServiceStub
    notifier: notifier_pb2_grpc.NotifierServiceStub
    router: router_pb2_grpc.RouterServiceStub


@pytest.fixture(scope="module")
def stubs(make_database) -> Iterator[Stubs]:  # type: ignore[no-untyped-def]
    services = start_services(make_database)
    router = services.start_router()
    names = ("referral", "traffic", "notifier")
    channels = [channel(services.addr(name)) for name in names] + [channel(router)]
    yield Stubs(
        referral_pb2_grpc.ReferralServiceStub(channels[0]),
        traffic_pb2_grpc.TrafficServiceStub(channels[1]),
        notifier_pb2_grpc.NotifierServiceStub(channels[2]),
        router_pb2_grpc.RouterServiceStub(channels[3]),
    )
    for ch in channels:
        ch.close()
    services.stop()


def conversion(won_at: Timestamp) -> referral_pb2.Conversion:
    return referral_pb2.Conversion(lead_id=8100001, referral_code="PART1", amount=10,
                                   won_at=won_at)


def sale(won_at: Timestamp) -> traffic_pb2.Sale:
    return traffic_pb2.Sale(lead_id=8100002, targetologist="Kenesary", amount=10, won_at=won_at)


def deal(**times: Timestamp) -> deal_pb2.Deal:
    """A won traffic deal: with a valid time it would be recorded and announced."""
    field = deal_pb2.CustomField(code="UTM_SOURCE",
                                 values=[deal_pb2.CustomFieldValue(value="kenesary_fb")])
    return deal_pb2.Deal(lead_id=8100003, account_id=1, status_id=142, pipeline_id=10418746,
                         price=10, custom_fields=[field], **times)


# field -> the call with that field set to a given Timestamp
TIME_FIELDS: dict[str, Callable[[Stubs, Timestamp], Any]] = {
    "conversion.won_at": lambda s, t: s.referral.RecordConversion(
        referral_pb2.RecordConversionRequest(conversion=conversion(t))),
    "requests[0].conversion.won_at": lambda s, t: s.referral.BatchRecordConversions(
        referral_pb2.BatchRecordConversionsRequest(
            requests=[referral_pb2.RecordConversionRequest(conversion=conversion(t))])),
    "referral reversed_at": lambda s, t: s.referral.ReverseConversion(
        referral_pb2.ReverseConversionRequest(lead_id=8100001, reversed_at=t)),
    "referral won_from": lambda s, t: s.referral.GetReferrerStats(
        referral_pb2.GetReferrerStatsRequest(won_from=t)),
    "referral won_to": lambda s, t: s.referral.GetReferrerStats(
        referral_pb2.GetReferrerStatsRequest(won_to=t)),
    "sale.won_at": lambda s, t: s.traffic.RecordSale(traffic_pb2.RecordSaleRequest(sale=sale(t))),
    "requests[0].sale.won_at": lambda s, t: s.traffic.BatchRecordSales(
        traffic_pb2.BatchRecordSalesRequest(requests=[traffic_pb2.RecordSaleRequest(sale=sale(t))])),
    "traffic reversed_at": lambda s, t: s.traffic.ReverseSale(
        traffic_pb2.ReverseSaleRequest(lead_id=8100002, reversed_at=t)),
    "traffic won_from": lambda s, t: s.traffic.GetTargetologistStats(
        traffic_pb2.GetTargetologistStatsRequest(won_from=t)),
    "traffic won_to": lambda s, t: s.traffic.GetTargetologistStats(
        traffic_pb2.GetTargetologistStatsRequest(won_to=t)),
    "deal.updated_at": lambda s, t: s.router.RouteDeal(
        router_pb2.RouteDealRequest(deal=deal(updated_at=t))),
    "deal.created_at": lambda s, t: s.router.RouteDeal(
        router_pb2.RouteDealRequest(deal=deal(created_at=t))),
    "explain deal.updated_at": lambda s, t: s.router.ExplainRoute(
        router_pb2.ExplainRouteRequest(deal=deal(updated_at=t))),
}

TOKEN_FIELDS: dict[str, Callable[[Stubs, str], Any]] = {
    "ListConversions": lambda s, token: s.referral.ListConversions(
        referral_pb2.ListConversionsRequest(page_token=token)),
    "ListSales": lambda s, token: s.traffic.ListSales(
        traffic_pb2.ListSalesRequest(page_token=token)),
    "ListNotifications": lambda s, token: s.notifier.ListNotifications(
        notifier_pb2.ListNotificationsRequest(page_token=token)),
}


def field_name(label: str) -> str:
    """The field as the error names it: the label without its service or method word."""
    return label.split(" ")[-1]


@pytest.mark.parametrize("bad", BAD_TIMES, ids=str)
@pytest.mark.parametrize("label", TIME_FIELDS, ids=str)
def test_a_timestamp_out_of_range_is_invalid_argument_naming_the_field(
    stubs: Stubs, label: str, bad: str
) -> None:
    seconds, nanos, suffix = BAD_TIMES[bad]
    with pytest.raises(grpc.RpcError) as err:
        TIME_FIELDS[label](stubs, Timestamp(seconds=seconds, nanos=nanos))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert err.value.details().startswith(f"{field_name(label)}{suffix}: "), err.value.details()
    if not suffix:
        assert "from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z" in err.value.details()


@pytest.mark.parametrize("bad", BAD_TOKENS, ids=str)
@pytest.mark.parametrize("method", TOKEN_FIELDS, ids=str)
def test_a_page_token_beyond_int64_is_invalid_argument_naming_page_token(
    stubs: Stubs, method: str, bad: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        TOKEN_FIELDS[method](stubs, BAD_TOKENS[bad])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("page_token: "), err.value.details()


@pytest.mark.parametrize("bad", BAD_TIMES, ids=str)
def test_a_batch_rejects_only_the_deal_with_the_bad_updated_at_and_runs_no_leg_for_it(
    stubs: Stubs, bad: str
) -> None:
    seconds, nanos, suffix = BAD_TIMES[bad]
    good = deal(updated_at=Timestamp(seconds=WHEN))
    good.lead_id = 8100004
    reply = stubs.router.BatchRouteDeals(router_pb2.BatchRouteDealsRequest(requests=[
        router_pb2.RouteDealRequest(deal=deal(updated_at=Timestamp(seconds=seconds,
                                                                   nanos=nanos))),
        router_pb2.RouteDealRequest(deal=good),
    ]))
    rejected, routed = reply.results
    assert rejected.invalid_argument.startswith(f"requests[0].deal.updated_at{suffix}: ")
    assert routed.response.status == router_pb2.PROCESSING_STATUS_SUCCESS
    # Nothing reached the traffic leg for the rejected deal.
    listed = stubs.traffic.ListSales(traffic_pb2.ListSalesRequest(lead_id=8100003))
    assert list(listed.sales) == []
