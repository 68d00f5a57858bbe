"""The sales behind the dashboards' tables: revenue per day per targetologist or
referral code (the charts), and one row's sales (the drill-down), as JSON or CSV.
Both read the credits page by page from traffic_svc or referral_svc (gRPC)."""

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import falcon
import grpc

from amoroute.v1 import referral_pb2, referral_pb2_grpc, traffic_pb2, traffic_pb2_grpc
from edge.admin_csv import send_csv
from edge.admin_json import iso
from edge.admin_params import Params, bad_param, format_of, time_range
from edge.admin_sales import SALES_TIMEOUT_S, referral_code_param, won_timestamp
from edge.sales_series import Credit, daily_series, local_days
from edge.upstream import upstream_error

# The longest range of a per-day series: the edge reads every sale of the range.
MAX_SERIES_DAYS = 366
# Page size of the list calls behind a series or an export (the services' maximum).
SERIES_PAGE = 1000
# One page of a row's sales in the drill-down.
DRILL_PAGE = 100
MAX_TARGETOLOGIST = 200
UTM_MARKS = ("source", "medium", "campaign", "content", "term")
DRILL_COLUMNS = (
    "lead_id", "deal_name", "amount", "won_at", "reversed_at", "reversal_reason",
    *(f"utm_{mark}" for mark in UTM_MARKS), "amocrm_url",
)


@dataclass(frozen=True)
class Ledger:
    """The credits of one service, whose they are (`owner_key`), listed page by page
    by its list method (ListSales, ListConversions)."""

    service: str
    address: str
    owner_key: str
    list_call: Callable[..., Any]
    request: Callable[..., Any]
    records: str  # the list field of the reply
    check_owner: Callable[[str | None], str]

    def owner_param(self, value: str | None) -> str:
        """The owner a request names, checked; a 400 names the parameter."""
        return self.check_owner(value)

    def page(
        self, owner: str, since: datetime | None, until: datetime | None, token: str, size: int
    ) -> tuple[list[Any], str]:
        """(records newest first, next page token)."""
        request = self.request(
            page_size=size, page_token=token, won_from=won_timestamp(since),
            won_to=won_timestamp(until), **{self.owner_key: owner},
        )
        try:
            reply = self.list_call(request, timeout=SALES_TIMEOUT_S)
        except grpc.RpcError as exc:
            raise upstream_error(self.service, self.address, exc) from None
        return list(getattr(reply, self.records)), reply.next_page_token

    def owner_of(self, record: Any) -> str:
        return str(getattr(record, self.owner_key))


def _targetologist(value: str | None) -> str:
    if value is None or len(value) > MAX_TARGETOLOGIST:
        raise bad_param(
            "targetologist",
            f"is required: a targetologist's name, 1-{MAX_TARGETOLOGIST} characters",
        )
    return value


def _referral_code(value: str | None) -> str:
    if value is None:
        raise bad_param("referral_code", "is required: the code, e.g. TEST123")
    return referral_code_param(value)


def traffic_ledger(traffic: grpc.Channel, address: str) -> Ledger:
    """Traffic sales per targetologist (traffic_svc ListSales)."""
    stub = traffic_pb2_grpc.TrafficServiceStub(traffic)
    return Ledger("traffic_svc", address, "targetologist", stub.ListSales,
                  traffic_pb2.ListSalesRequest, "sales", _targetologist)


def referral_ledger(referral: grpc.Channel, address: str) -> Ledger:
    """Referral conversions per code (referral_svc ListConversions)."""
    stub = referral_pb2_grpc.ReferralServiceStub(referral)
    return Ledger("referral_svc", address, "referral_code", stub.ListConversions,
                  referral_pb2.ListConversionsRequest, "conversions", _referral_code)


def _zone(params: Params) -> ZoneInfo:
    """The operator's time zone (`tz`, an IANA name; UTC when absent)."""
    name = params.text("tz") or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise bad_param("tz", f"{name!r} is not an IANA time zone, e.g. Asia/Almaty") from None


def _pages(
    ledger: Ledger, owner: str, since: datetime | None, until: datetime | None,
    first: tuple[list[Any], str] | None = None,
) -> Iterator[list[Any]]:
    """Every record of the range, a page at a time (starting from `first` when read)."""
    records, token = first or ledger.page(owner, since, until, "", SERIES_PAGE)
    while True:
        yield records
        if not token:
            return
        records, token = ledger.page(owner, since, until, token, SERIES_PAGE)


def _is_reversed(record: Any) -> bool:
    return bool(record.HasField("reversed_at") or record.HasField("reattributed_at"))


@dataclass
class DailyResource:
    """GET /api/admin/sales/{traffic,referral}/daily?from=&to=&tz=: revenue per local
    day (in the operator's time zone) per targetologist or referral code, optionally
    of one; reversed and re-attributed sales are counted apart."""

    ledger: Ledger
    currency: str = ""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        owner_key = self.ledger.owner_key
        params = Params(req, ("from", "to", "tz", owner_key))
        since, until = time_range(params, "from", "to")
        if since is None:
            raise bad_param("from", "is required: the start of the series")
        if until is None:
            raise bad_param("to", "is required: the end of the series")
        if until - since > timedelta(days=MAX_SERIES_DAYS):
            raise bad_param("to", f"must be at most {MAX_SERIES_DAYS} days after from")
        named = params.text(owner_key)
        owner = self.ledger.owner_param(named) if named is not None else ""
        zone = _zone(params)
        days = local_days(since, until, zone)
        credits = (
            Credit(
                self.ledger.owner_of(record),
                record.amount,
                record.won_at.ToDatetime(tzinfo=UTC),
                _is_reversed(record),
            )
            for page in _pages(self.ledger, owner, since, until)
            for record in page
        )
        series, totals = daily_series(credits, days, zone, owner_key)
        resp.media = {
            "from": iso(since),
            "to": iso(until),
            "tz": zone.key,
            "currency": self.currency or None,
            "days": [day.isoformat() for day in days],
            "series": series,
            "totals": totals,
        }


def _moment(record: Any, field: str) -> str | None:
    if not record.HasField(field):
        return None
    return iso(getattr(record, field).ToDatetime(tzinfo=UTC))


def sale_item(record: Any, subdomain: str) -> dict[str, Any]:
    """One sale of a drill-down (a traffic Sale or a referral Conversion), with links to
    the lead in AmoCRM (when the account's subdomain is set) and to its events in the
    log (a credit does not keep a log id)."""
    utm = {key: getattr(record.utm, key) for key in UTM_MARKS}
    return {
        "lead_id": record.lead_id,
        "deal_name": record.deal_name,
        "amount": record.amount,
        "won_at": _moment(record, "won_at"),
        "reversed_at": _moment(record, "reversed_at"),
        "reversal_reason": record.reversal_reason,
        "utm": {key: value for key, value in utm.items() if value},
        "amocrm_url": (
            f"https://{subdomain}.amocrm.ru/leads/detail/{record.lead_id}" if subdomain else None
        ),
        "log_url": f"#/logs?lead_id={record.lead_id}",
    }


def _file_safe(owner: str) -> str:
    """The owner as part of a file name: letters, digits, '_' and '-' only."""
    return re.sub(r"[^\w-]+", "_", owner)


def _csv_row(item: dict[str, Any]) -> list[Any]:
    flat = {**item, **{f"utm_{key}": item["utm"].get(key, "") for key in UTM_MARKS}}
    return [flat[column] for column in DRILL_COLUMNS]


@dataclass
class SalesListResource:
    """GET /api/admin/sales/traffic/sales?targetologist= and
    /api/admin/sales/referral/sales?referral_code= (&from=&to=&page_token=): the sales
    behind one row of a dashboard, newest first, a page at a time; `format=csv` streams
    every sale of the range as one attachment."""

    ledger: Ledger
    subdomain: str = ""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        owner_key = self.ledger.owner_key
        params = Params(req, ("from", "to", owner_key, "page_token", "format"))
        since, until = time_range(params, "from", "to")
        owner = self.ledger.owner_param(params.text(owner_key))
        if format_of(params) == "csv":
            # The first page is read now, so a refused range or a service away is
            # answered as an error, not as a cut-off download.
            first = self.ledger.page(owner, since, until, "", SERIES_PAGE)
            pages = (
                [_csv_row(sale_item(record, self.subdomain)) for record in page]
                for page in _pages(self.ledger, owner, since, until, first)
            )
            kind = self.ledger.service.removesuffix("_svc")
            send_csv(resp, f"{kind}-sales-{_file_safe(owner)}", DRILL_COLUMNS, pages)
            return
        records, token = self.ledger.page(
            owner, since, until, params.text("page_token") or "", DRILL_PAGE
        )
        resp.media = {
            owner_key: owner,
            "items": [sale_item(record, self.subdomain) for record in records],
            "next_page_token": token or None,
        }
