"""Admin resources over referral_svc and traffic_svc (gRPC): the sales figures, and
the registration of referral partners."""

import logging
import re
from datetime import datetime
from typing import Any

import falcon
import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from amoroute import validation
from amoroute.errors import InvalidArgument
from amoroute.timeutil import to_timestamp
from amoroute.v1 import referral_pb2, referral_pb2_grpc, traffic_pb2, traffic_pb2_grpc
from edge.admin_csv import send_csv
from edge.admin_json import iso
from edge.admin_params import Params, bad_param, format_of, time_range
from edge.upstream import upstream_error

log = logging.getLogger(__name__)

# Deadline of one stats call to referral_svc / traffic_svc.
SALES_TIMEOUT_S = 5.0

# referral_svc's limits of UpsertPartner, checked here too so a 400 names the field
# as this API spells it; the service's own check stays the last word.
REFERRAL_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_PARTNER_NAME = 200
MAX_COMMISSION_BP = 10_000  # 100 %
PARTNER_FIELDS = ("name", "commission_bp")
REFERRAL_COLUMNS = (
    "referral_code", "partner_name", "partner_registered", "conversions", "amount_total",
    "commission_bp", "commission_total", "reversed_conversions", "reversed_amount",
)
TRAFFIC_COLUMNS = ("targetologist", "sales", "revenue", "reversed_sales", "reversed_revenue")


def _won_range(req: falcon.Request) -> tuple[datetime | None, datetime | None]:
    return time_range(Params(req, ("from", "to", "format")), "from", "to")


def _wants_csv(req: falcon.Request) -> bool:
    """`format=csv`: the table as a CSV attachment rather than JSON."""
    return format_of(Params(req, ("from", "to", "format"))) == "csv"


def _send_table(
    resp: falcon.Response, name: str, header: tuple[str, ...], items: list[dict[str, Any]]
) -> None:
    """The table's rows (one per targetologist or referral code) as CSV: a few hundred
    at most, which the service answers in one reply."""
    send_csv(resp, name, header, [[[item[key] for key in header] for item in items]])


def won_timestamp(moment: datetime | None) -> Timestamp | None:
    """A bound of a won range as the services take it (None: open)."""
    return None if moment is None else to_timestamp(moment)


class TrafficSalesResource:
    """GET /api/admin/sales/traffic?from=&to=: sales and revenue per targetologist."""

    def __init__(self, traffic: grpc.Channel, address: str, currency: str = "") -> None:
        self.stub = traffic_pb2_grpc.TrafficServiceStub(traffic)
        self.address = address
        self.currency = currency

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        since, until = _won_range(req)
        export = _wants_csv(req)
        request = traffic_pb2.GetTargetologistStatsRequest(
            won_from=won_timestamp(since), won_to=won_timestamp(until)
        )
        try:
            reply = self.stub.GetTargetologistStats(request, timeout=SALES_TIMEOUT_S)
        except grpc.RpcError as exc:
            raise upstream_error("traffic_svc", self.address, exc) from None
        items = sorted(
            (
                {
                    "targetologist": s.targetologist, "sales": s.sales, "revenue": s.revenue,
                    "reversed_sales": s.reversed_sales, "reversed_revenue": s.reversed_revenue,
                }
                for s in reply.stats
            ),
            key=lambda item: (-item["revenue"], item["targetologist"]),
        )
        if export:
            _send_table(resp, "traffic-sales", TRAFFIC_COLUMNS, items)
            return
        resp.media = {
            "from": iso(since),
            "to": iso(until),
            "currency": self.currency or None,
            "items": items,
            # Reversed sales are apart: not in sales and revenue.
            "totals": {
                key: sum(i[key] for i in items)
                for key in ("sales", "revenue", "reversed_sales", "reversed_revenue")
            },
        }


class ReferralSalesResource:
    """GET /api/admin/sales/referral?from=&to=: conversions, amount and commission per
    code; reversed conversions are counted apart."""

    def __init__(self, referral: grpc.Channel, address: str, currency: str = "") -> None:
        self.stub = referral_pb2_grpc.ReferralServiceStub(referral)
        self.address = address
        self.currency = currency

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        since, until = _won_range(req)
        export = _wants_csv(req)
        request = referral_pb2.GetReferrerStatsRequest(
            won_from=won_timestamp(since), won_to=won_timestamp(until)
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
                    "reversed_conversions": s.reversed_conversions,
                    "reversed_amount": s.reversed_amount,
                }
                for s in reply.stats
            ),
            key=lambda item: (-item["amount_total"], item["referral_code"]),
        )
        if export:
            _send_table(resp, "referral-sales", REFERRAL_COLUMNS, items)
            return
        resp.media = {
            "from": iso(since),
            "to": iso(until),
            "currency": self.currency or None,
            "items": items,
            # Reversed conversions are apart: not in conversions, amount and commission.
            "totals": {
                key: sum(i[key] for i in items)
                for key in (
                    "conversions", "amount_total", "commission_total", "reversed_conversions",
                    "reversed_amount",
                )
            },
        }


def referral_code_param(value: str) -> str:
    """The {referral_code} of a path, upper-cased as referral_svc stores codes."""
    if not REFERRAL_CODE.fullmatch(value):
        raise bad_param(
            "referral_code",
            "must be 1-64 letters, digits, '_' or '-' (the code without its prefix, "
            "e.g. TEST123 for utm_source ref_TEST123)",
        )
    return value.upper()


def partner_body(req: falcon.Request) -> tuple[str, int]:
    """(name, commission_bp) of a PUT body; a 400 names the field at fault."""
    # JSON only: Falcon would also read a form, whose values are all text.
    if (req.content_type or "").partition(";")[0].strip().lower() != falcon.MEDIA_JSON:
        raise falcon.HTTPUnsupportedMediaType(
            description="send the partner as JSON, with Content-Type: application/json"
        )
    try:
        body: Any = req.get_media()
    except (falcon.MediaNotFoundError, falcon.MediaMalformedError):
        raise bad_param("body", 'must be a JSON object: {"name": …, "commission_bp": …}') from None
    if not isinstance(body, dict):
        raise bad_param("body", 'must be a JSON object: {"name": …, "commission_bp": …}')
    for key in body:
        if key not in PARTNER_FIELDS:
            raise bad_param(key, f"unknown field; a partner has {', '.join(PARTNER_FIELDS)}")
    name = body.get("name")
    if not isinstance(name, str):
        raise bad_param("name", "is required: the partner's name, a string (may be empty)")
    try:
        validation.text("name", name, max_len=MAX_PARTNER_NAME)
    except InvalidArgument as exc:
        raise bad_param("name", exc.problem) from None
    commission = body.get("commission_bp")
    # bool is an int in Python; true is not a commission.
    if (
        not isinstance(commission, int)
        or isinstance(commission, bool)
        or not 0 <= commission <= MAX_COMMISSION_BP
    ):
        raise bad_param(
            "commission_bp",
            f"is required: an integer from 0 to {MAX_COMMISSION_BP} basis points "
            f"(1000 = 10 %, {MAX_COMMISSION_BP} = 100 %)",
        )
    return name, commission


class PartnerResource:
    """PUT /api/admin/partners/{referral_code}: register a referral partner, or change
    its name and commission (referral_svc's UpsertPartner, called as the edge on behalf
    of the signed-in admin). 201 when the code was not registered, else 200."""

    def __init__(self, referral: grpc.Channel, address: str) -> None:
        self.stub = referral_pb2_grpc.ReferralServiceStub(referral)
        self.address = address

    def on_put(self, req: falcon.Request, resp: falcon.Response, referral_code: str) -> None:
        code = referral_code_param(referral_code)
        name, commission_bp = partner_body(req)
        request = referral_pb2.UpsertPartnerRequest(
            partner=referral_pb2.Partner(referral_code=code, name=name, commission_bp=commission_bp)
        )
        try:
            reply = self.stub.UpsertPartner(request, timeout=SALES_TIMEOUT_S)
        except grpc.RpcError as exc:
            raise upstream_error(
                "referral_svc", self.address, exc, field_prefix="partner."
            ) from None
        # Commission rates decide payouts: every change is in the log.
        log.info(
            "referral partner %s %s: commission %d bp",
            reply.partner.referral_code,
            "registered" if reply.created else "updated",
            reply.partner.commission_bp,
            extra={"referral_code": reply.partner.referral_code},
        )
        resp.status = falcon.HTTP_201 if reply.created else falcon.HTTP_200
        resp.media = {
            "referral_code": reply.partner.referral_code,
            "name": reply.partner.name,
            "commission_bp": reply.partner.commission_bp,
            "created": reply.created,
        }
