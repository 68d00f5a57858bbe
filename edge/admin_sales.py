"""Admin resources proxying sales figures from referral_svc and traffic_svc over gRPC."""

from datetime import datetime

import falcon
import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from amoroute.timeutil import to_timestamp
from amoroute.v1 import referral_pb2, referral_pb2_grpc, traffic_pb2, traffic_pb2_grpc
from edge.admin_json import iso
from edge.admin_params import Params, time_range
from edge.upstream import upstream_error

# Deadline of one stats call to referral_svc / traffic_svc.
SALES_TIMEOUT_S = 5.0


def _won_range(req: falcon.Request) -> tuple[datetime | None, datetime | None]:
    return time_range(Params(req, ("from", "to")), "from", "to")


def _timestamp(moment: datetime | None) -> Timestamp | None:
    return None if moment is None else to_timestamp(moment)


class TrafficSalesResource:
    """GET /api/admin/sales/traffic?from=&to=: sales and revenue per targetologist."""

    def __init__(self, traffic: grpc.Channel, address: str) -> None:
        self.stub = traffic_pb2_grpc.TrafficServiceStub(traffic)
        self.address = address

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        since, until = _won_range(req)
        request = traffic_pb2.GetTargetologistStatsRequest(
            won_from=_timestamp(since), won_to=_timestamp(until)
        )
        try:
            reply = self.stub.GetTargetologistStats(request, timeout=SALES_TIMEOUT_S)
        except grpc.RpcError as exc:
            raise upstream_error("traffic_svc", self.address, exc) from None
        items = sorted(
            (
                {"targetologist": s.targetologist, "sales": s.sales, "revenue": s.revenue}
                for s in reply.stats
            ),
            key=lambda item: (-item["revenue"], item["targetologist"]),
        )
        resp.media = {
            "from": iso(since),
            "to": iso(until),
            "items": items,
            "totals": {
                "sales": sum(i["sales"] for i in items),
                "revenue": sum(i["revenue"] for i in items),
            },
        }


class ReferralSalesResource:
    """GET /api/admin/sales/referral?from=&to=: conversions, amount and commission per code."""

    def __init__(self, referral: grpc.Channel, address: str) -> None:
        self.stub = referral_pb2_grpc.ReferralServiceStub(referral)
        self.address = address

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        since, until = _won_range(req)
        request = referral_pb2.GetReferrerStatsRequest(
            won_from=_timestamp(since), won_to=_timestamp(until)
        )
        try:
            reply = self.stub.GetReferrerStats(request, timeout=SALES_TIMEOUT_S)
        except grpc.RpcError as exc:
            raise upstream_error("referral_svc", self.address, exc) from None
        items = sorted(
            (
                {
                    "referral_code": s.referral_code,
                    "partner_name": s.partner_name,
                    "partner_registered": s.partner_registered,
                    "conversions": s.conversions,
                    "amount_total": s.amount_total,
                    "commission_bp": s.commission_bp,
                    "commission_total": s.commission_total,
                }
                for s in reply.stats
            ),
            key=lambda item: (-item["amount_total"], item["referral_code"]),
        )
        resp.media = {
            "from": iso(since),
            "to": iso(until),
            "items": items,
            "totals": {
                key: sum(i[key] for i in items)
                for key in ("conversions", "amount_total", "commission_total")
            },
        }
