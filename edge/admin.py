"""The admin API (/api/admin/…) and the web UI's page (/admin/).

Every API resource needs `Authorization: Bearer $ADMIN_TOKEN` (edge/access.py decides, deny
by default); while ADMIN_TOKEN is unset the API and the UI refuse everyone. Resources only
translate HTTP to store or gRPC calls and back; the SQL lives in edge/log_store.py.
"""

import dataclasses
import logging
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import falcon
import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.exc import SQLAlchemyError

from amoroute import paging
from amoroute.errors import InvalidArgument
from amoroute.timeutil import in_range, now, to_timestamp, utc
from amoroute.v1 import referral_pb2, referral_pb2_grpc, traffic_pb2, traffic_pb2_grpc
from edge.access import public_resource
from edge.dispatch import Dispatcher, Job
from edge.event_lifecycle import DECISIONS, PENDING, STATUSES, Outcome
from edge.log_store import DueEvent, LogQuery, NewLog, WebhookLogStore
from edge.reconcile import Reconciler
from edge.worker import job_for

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
API_PREFIX = "/api/admin"
UI_PREFIX = "/admin"

MAX_PAGE = 200
DEFAULT_PAGE = 50
MAX_SEARCH = 200
MAX_WINDOW = timedelta(days=366)
_WINDOW_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_SOURCE = re.compile(r"[a-z][a-z0-9_]{0,19}")
_INT64_MAX = 2**63 - 1
# Deadline of one stats call to referral_svc / traffic_svc.
SALES_TIMEOUT_S = 5.0


# --- query parameters ----------------------------------------------------------------------


def _bad(name: str, problem: str) -> falcon.HTTPBadRequest:
    return falcon.HTTPBadRequest(description=f"{name}: {problem}")


class Params:
    """A request's query parameters, read one by one; each error names the parameter."""

    def __init__(self, req: falcon.Request, allowed: tuple[str, ...]) -> None:
        self.params = req.params
        for name, value in self.params.items():
            if name not in allowed:
                raise _bad(name, f"unknown parameter; this endpoint takes {', '.join(allowed)}")
            # The database cannot compare text with NUL in it: refuse it here, by name.
            if any("\x00" in v for v in (value if isinstance(value, list) else [value])):
                raise _bad(name, "must not contain NUL characters")

    def text(self, name: str) -> str | None:
        value = self.params.get(name)
        if isinstance(value, list):
            raise _bad(name, "given more than once")
        value = (value or "").strip()
        return value or None

    def choices(self, name: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        """One or more of `allowed`, as repeated parameters or comma-separated."""
        raw = self.params.get(name)
        values = raw if isinstance(raw, list) else [raw] if raw is not None else []
        chosen = [v.strip() for value in values for v in value.split(",") if v.strip()]
        for value in chosen:
            if value not in allowed:
                raise _bad(name, f"must be one of {', '.join(allowed)}")
        return tuple(dict.fromkeys(chosen))

    def integer(self, name: str, low: int, high: int, default: int | None = None) -> int | None:
        value = self.text(name)
        if value is None:
            return default
        if not re.fullmatch(r"[0-9]{1,19}", value) or not low <= int(value) <= high:
            raise _bad(name, f"must be an integer from {low} to {high}")
        return int(value)

    def moment(self, name: str) -> datetime | None:
        value = self.text(name)
        return None if value is None else parse_moment(name, value)


def parse_moment(name: str, value: str) -> datetime:
    """An ISO 8601 date or date-time, as UTC; without an offset it is UTC. A '+' sent
    unencoded in a query string arrives as a space, so that is read as '+'. 400 naming
    the parameter for a time outside amoroute's range (amoroute.timeutil.RANGE)."""
    text = re.sub(r" (\d{2}(:?\d{2})?)$", r"+\1", value.strip())
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _bad(
            name, f"{value!r} is not an ISO 8601 date or time, e.g. 2025-06-01T09:00:00+05:00"
        ) from None
    try:
        return in_range(name, moment)
    except InvalidArgument as exc:
        raise _bad(name, exc.problem) from None


def log_id_param(value: int) -> int:
    """The {log_id} of a path: Falcon's int converter takes any size, the table's ids
    are positive int64."""
    if not 1 <= value <= _INT64_MAX:
        raise _bad("log_id", f"must be a webhook log id, an integer from 1 to {_INT64_MAX}")
    return value


def _time_range(params: Params, start: str, end: str) -> tuple[datetime | None, datetime | None]:
    since, until = params.moment(start), params.moment(end)
    if since and until and until <= since:
        raise _bad(end, f"must be later than {start}")
    return since, until


def parse_window(value: str | None) -> tuple[str, timedelta]:
    """`24h`, `7d`, `30m`… -> (label, length); default 24 h, at most 366 days."""
    label = value or "24h"
    match = re.fullmatch(r"([1-9][0-9]{0,5})([mhd])", label)
    if not match:
        raise _bad("window", "must be a number and a unit m, h or d, e.g. 1h, 24h, 7d, 30d")
    length = timedelta(**{_WINDOW_UNITS[match[2]]: int(match[1])})
    if length > MAX_WINDOW:
        raise _bad("window", "must be at most 366d")
    return label, length


def log_query(req: falcon.Request) -> LogQuery:
    """The filters of GET /api/admin/webhook-logs."""
    params = Params(
        req,
        (
            "status",
            "routing",
            "lead_id",
            "source",
            "received_from",
            "received_to",
            "q",
            "limit",
            "cursor",
        ),
    )
    source = params.text("source")
    if source is not None and not _SOURCE.fullmatch(source):
        raise _bad("source", "must be a source name such as amocrm, replay or reconcile")
    text = params.text("q")
    if text is not None and len(text) > MAX_SEARCH:
        raise _bad("q", f"must be at most {MAX_SEARCH} characters")
    cursor = params.text("cursor")
    try:
        before_id = paging.decode_token(cursor or "")
    except InvalidArgument:
        raise _bad("cursor", "is not a next_cursor this API returned") from None
    received_from, received_to = _time_range(params, "received_from", "received_to")
    return LogQuery(
        statuses=params.choices("status", STATUSES),
        decisions=params.choices("routing", DECISIONS),
        lead_id=params.integer("lead_id", 1, _INT64_MAX),
        source=source,
        received_from=received_from,
        received_to=received_to,
        text=text,
        before_id=before_id,
        limit=params.integer("limit", 1, MAX_PAGE, DEFAULT_PAGE) or DEFAULT_PAGE,
    )


# --- JSON ----------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else utc(value).isoformat()


def public(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as JSON: datetimes in ISO 8601 UTC, internal bookkeeping left out."""
    out = {k: _iso(v) if isinstance(v, datetime) else v for k, v in row.items()}
    out.pop("attempt_started_at", None)
    return out


# --- resources -----------------------------------------------------------------------------


class NotReplayable(Exception):
    """The stored event cannot become a deal (e.g. an unparseable body)."""


def replay(
    logs: WebhookLogStore,
    dispatcher: Dispatcher,
    log_id: int,
    deadline_s: float,
    subdomain: str = "",
) -> int:
    """Log the stored event again as a new `replay` event and route it now; returns the new
    log's id. Downstream services dedupe per lead, so a replay never credits a sale twice.
    `subdomain`: the AmoCRM account's, for events read from its API that do not name it.
    LookupError: no such log; NotReplayable: its data cannot become a deal."""
    original = logs.find(log_id)
    if original is None:
        raise LookupError(log_id)
    prepared = job_for(DueEvent(log_id, original["source"], original["deal_data"], ()), subdomain)
    if isinstance(prepared, Outcome):
        raise NotReplayable(prepared.error_message)
    [new_id] = logs.insert(
        [
            NewLog(
                source="replay",
                deal_data=original["deal_data"],
                event=original["event"],
                account_id=original["account_id"],
                pipeline_id=original["pipeline_id"],
                status_id=original["status_id"],
                lead_id=original["lead_id"],
                lead_updated_at=original["lead_updated_at"],
                processing_status=PENDING,
                deal_name=original["deal_name"],
                replay_of=log_id,
            )
        ]
    )
    log.info("replaying webhook log", extra={"log_id": log_id, "replay_log_id": new_id})
    job: Job = dataclasses.replace(prepared, log_id=new_id)
    try:
        dispatcher.dispatch([job], deadline_s)
    except SQLAlchemyError:
        # The replay is logged as pending: the worker finishes it.
        log.exception("replay outcome not recorded", extra={"log_id": new_id})
    return new_id


class WebhookLogsResource:
    """GET /api/admin/webhook-logs, GET …/{id}, POST …/{id}/replay."""

    def __init__(
        self, logs: WebhookLogStore, dispatcher: Dispatcher, deadline_s: float, subdomain: str = ""
    ) -> None:
        self.logs = logs
        self.dispatcher = dispatcher
        self.deadline_s = deadline_s
        self.subdomain = subdomain

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        page = self.logs.search(log_query(req))
        resp.media = {
            "items": [public(row) for row in page.items],
            "next_cursor": None
            if page.next_before_id is None
            else paging.encode_token(page.next_before_id),
        }

    def on_get_one(self, req: falcon.Request, resp: falcon.Response, log_id: int) -> None:
        log_id = log_id_param(log_id)
        row = self.logs.find(log_id)
        if row is None:
            raise falcon.HTTPNotFound(description=f"no webhook log {log_id}")
        resp.media = {
            **public(row),
            "attempts": [public(a) for a in self.logs.attempts(log_id)],
            "replayed_as": self.logs.replays_of(log_id),
        }

    def on_post_replay(self, req: falcon.Request, resp: falcon.Response, log_id: int) -> None:
        log_id = log_id_param(log_id)
        try:
            new_id = replay(self.logs, self.dispatcher, log_id, self.deadline_s, self.subdomain)
        except LookupError:
            raise falcon.HTTPNotFound(description=f"no webhook log {log_id}") from None
        except NotReplayable as exc:
            raise falcon.HTTPConflict(
                description=f"webhook log {log_id} cannot be replayed: {exc}"
            ) from None
        row = self.logs.find(new_id)
        assert row is not None
        resp.status = falcon.HTTP_201
        resp.location = f"{API_PREFIX}/webhook-logs/{new_id}"
        resp.media = public(row)


class WebhookStatsResource:
    """GET /api/admin/webhook-stats?window=24h."""

    def __init__(self, logs: WebhookLogStore) -> None:
        self.logs = logs

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        label, length = parse_window(Params(req, ("window",)).text("window"))
        until = now()
        stats = self.logs.window_stats(until - length, until)
        by_status = {status: stats.by_status.get(status, 0) for status in STATUSES}
        total = sum(stats.by_status.values())
        finished = total - by_status[PENDING]
        resp.media = {
            "window": label,
            "since": _iso(stats.since),
            "until": _iso(stats.until),
            "total": total,
            "by_status": by_status,
            "by_routing": {
                **{decision: stats.by_decision.get(decision, 0) for decision in DECISIONS},
                "undecided": stats.by_decision.get(None, 0),
            },
            "finished": finished,
            # Share of finished events that fully succeeded; null when none finished.
            "success_rate": round(by_status["success"] / finished, 4) if finished else None,
            "processing_ms": {"p50": stats.p50_ms, "p95": stats.p95_ms, "count": stats.timed},
        }


def _stats_request_range(req: falcon.Request) -> tuple[datetime | None, datetime | None]:
    return _time_range(Params(req, ("from", "to")), "from", "to")


def _timestamp(moment: datetime | None) -> Timestamp | None:
    return None if moment is None else to_timestamp(moment)


def _upstream_error(service: str, address: str, exc: grpc.RpcError) -> falcon.HTTPError:
    code = exc.code()
    name = code.name if code else "UNKNOWN"
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return falcon.HTTPBadRequest(description=f"{service}: {exc.details()}")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return falcon.HTTPServiceUnavailable(
            description=f"{service} at {address} did not answer ({name}); try again shortly",
            retry_after=5,
        )
    return falcon.HTTPBadGateway(
        description=f"{service} at {address} failed ({name}): {exc.details()}"
    )


class TrafficSalesResource:
    """GET /api/admin/sales/traffic?from=&to=: sales and revenue per targetologist."""

    def __init__(self, traffic: grpc.Channel, address: str) -> None:
        self.stub = traffic_pb2_grpc.TrafficServiceStub(traffic)
        self.address = address

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        since, until = _stats_request_range(req)
        request = traffic_pb2.GetTargetologistStatsRequest(
            won_from=_timestamp(since), won_to=_timestamp(until)
        )
        try:
            reply = self.stub.GetTargetologistStats(request, timeout=SALES_TIMEOUT_S)
        except grpc.RpcError as exc:
            raise _upstream_error("traffic_svc", self.address, exc) from None
        items = sorted(
            (
                {"targetologist": s.targetologist, "sales": s.sales, "revenue": s.revenue}
                for s in reply.stats
            ),
            key=lambda item: (-item["revenue"], item["targetologist"]),
        )
        resp.media = {
            "from": _iso(since),
            "to": _iso(until),
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
        since, until = _stats_request_range(req)
        request = referral_pb2.GetReferrerStatsRequest(
            won_from=_timestamp(since), won_to=_timestamp(until)
        )
        try:
            reply = self.stub.GetReferrerStats(request, timeout=SALES_TIMEOUT_S)
        except grpc.RpcError as exc:
            raise _upstream_error("referral_svc", self.address, exc) from None
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
            "from": _iso(since),
            "to": _iso(until),
            "items": items,
            "totals": {
                key: sum(i[key] for i in items)
                for key in ("conversions", "amount_total", "commission_total")
            },
        }


class ReconcileResource:
    """POST /api/admin/reconcile: one reconciliation pass now, and its report."""

    def __init__(self, reconciler: Reconciler | None) -> None:
        self.reconciler = reconciler

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.reconciler is None:
            raise falcon.HTTPConflict(
                title="AmoCRM API not configured",
                description="set AMOCRM_ACCESS_TOKEN and AMOCRM_DOMAIN to reconcile",
            )
        report = self.reconciler.run_once()
        resp.media = report.to_json()


@public_resource
class AdminPageResource:
    """GET /admin/: the UI's page (its scripts and styles are under /admin/static/)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.page = (STATIC_DIR / "index.html").read_bytes()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.enabled:
            resp.status = falcon.HTTP_503
            resp.content_type = falcon.MEDIA_TEXT
            resp.text = "The admin UI is disabled: set ADMIN_TOKEN on the edge to enable it.\n"
            return
        resp.content_type = falcon.MEDIA_HTML
        resp.cache_control = ["no-cache"]
        resp.data = self.page

    def on_get_bare(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPPermanentRedirect(f"{UI_PREFIX}/")
