"""POST /webhook/amocrm: log every lead event durably, answer, then route it."""

import base64
import dataclasses
import hmac
import html
import logging
import threading
from collections import Counter
from typing import Any

import falcon
from sqlalchemy.exc import SQLAlchemyError

from amoroute import __version__, requestid, tracing
from amoroute.db import json_rows
from amoroute.v1 import deal_pb2
from edge.access import public_resource
from edge.amocrm_form import (
    FormError,
    FormLimits,
    LeadEvent,
    deal_from_event,
    lead_events,
    parse_form,
)
from edge.dispatch import Job
from edge.event_lifecycle import ERROR, SUCCESS, Outcome
from edge.events import log_for_deal
from edge.log_store import NewLog
from edge.log_writer import LogWriter
from edge.observability import WEBHOOKS
from edge.routing_queue import RoutingQueue

log = logging.getLogger(__name__)

SUPPORTED_ROUTES = ["referral", "traffic", "both", "unknown"]


# The bytes of deal_data one webhook may store, all its rows together, as the
# JSON the database receives: a body within the size limit stores less (values
# are a part of it, and what repeats is stored once); only a body of characters
# JSON escapes (controls, quotes) could need more, and it is then kept raw.
STORED_BYTES_PER_BODY_BYTE = 4
# JSON escapes a character into at most this many bytes (`\u0001`).
_JSON_BYTES_PER_CHAR = 6
# What a row adds to its part of the body at most: its keys and the account identity.
_ROW_KEYS_BYTES = 1024

# Bodies larger than this (AmoCRM's usual webhook is a few KB) are turned into rows one at
# a time per worker process, and their rows committed by a writer of their own: four
# crafted bodies at the limits, parsed at once, would otherwise hold the interpreter
# between them, and their long INSERTs the commit, while a normal webhook's answer waits.
LARGE_BODY_BYTES = 64 * 1024
# PERF: one large body's intake at a time per process keeps a normal webhook's answer
# fast beside crafted ones; measured by python -m bench.hostile_bodies
_LARGE_INTAKE = threading.Lock()


def raw_body_record(
    body: bytes, content_type: str | None, problem: str, max_bytes: int
) -> dict[str, Any]:
    """The body as received, for an event that could not be parsed: whole when its
    JSON fits in `max_bytes`, else its start, with "truncated" and its size saying so."""
    try:
        text = body.decode("utf-8")
        if "\x00" in text:  # PostgreSQL cannot store NUL in text: keep the bytes instead
            raise UnicodeDecodeError("utf-8", body, 0, 1, "NUL")
        could_be_over = len(text) * _JSON_BYTES_PER_CHAR > max_bytes
        if could_be_over and len(json_rows([{"raw_body": text}])) > max_bytes:
            text = text[: max_bytes // _JSON_BYTES_PER_CHAR]
        raw: dict[str, Any] = {"raw_body": text}
        kept = len(text.encode())
    except UnicodeDecodeError:
        kept = min(len(body), max_bytes // 4 * 3)  # base64: 4 characters per 3 bytes
        raw = {"raw_body_base64": base64.b64encode(body[:kept]).decode()}
    if kept < len(body):
        raw.update(truncated=True, body_bytes=len(body))
    return {**raw, "content_type": content_type, "problem": problem}


FORM_TYPE = "application/x-www-form-urlencoded"
# What is kept of a body refused for its size.
SAMPLE_BYTES = 4096
# Characters of a webhook's User-Agent kept with its event.
MAX_USER_AGENT = 512


def rejected(body: bytes, content_type: str | None, problem: str, max_bytes: int) -> NewLog:
    """The row that records a body we refuse or cannot parse, with the body itself."""
    return NewLog(
        source="amocrm",
        deal_data=raw_body_record(body, content_type, problem, max_bytes),
        routing_decision="ignored",
        processing_status=ERROR,
        error_message=problem,
    )


def content_type_problem(content_type: str | None) -> str | None:
    """Why a Content-Type is not AmoCRM's form encoding (UTF-8), or None."""
    media, _, params = (content_type or "").partition(";")
    if media.strip().lower() != FORM_TYPE:
        return f"rejected: content type {content_type!r} is not {FORM_TYPE}"
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip(' "').lower() not in ("utf-8", "utf8"):
            return f"rejected: charset {value.strip()!r} is not UTF-8"
    return None


def account_problem(form: dict[str, Any], expected_subdomain: str) -> str | None:
    """Why a body does not come from our AmoCRM account, or None (also when no
    account is configured)."""
    if not expected_subdomain:
        return None
    account = form.get("account")
    subdomain = account.get("subdomain") if isinstance(account, dict) else None
    if not isinstance(subdomain, str) or subdomain.lower() != expected_subdomain.lower():
        return (
            f"rejected: account[subdomain] {subdomain!r} is not AMOCRM_DOMAIN "
            f"{expected_subdomain!r}; not routed"
        )
    return None


def intake(
    body: bytes, content_type: str | None, limits: FormLimits, expected_subdomain: str = ""
) -> tuple[list[NewLog], list[deal_pb2.Deal | None]]:
    """Turn a webhook body into rows to log and the deals to route (None where
    an event cannot become a deal). Never raises on bad input; the rows' deal_data
    together stay within the bytes stored per webhook."""
    max_bytes = limits.max_body_bytes * STORED_BYTES_PER_BODY_BYTE
    try:
        form = parse_form(body, limits)
        events = lead_events(form, limits)
    except FormError as exc:
        return [rejected(body, content_type, f"unparseable webhook body: {exc}", max_bytes)], [None]
    if problem := account_problem(form, expected_subdomain):
        return [rejected(body, content_type, problem, max_bytes)], [None]
    rows, deals = _rows(form, events)
    # PERF: serialising the rows twice would tax every webhook; only a body that could
    # be over is measured; measured by python -m bench.ab
    if len(body) * _JSON_BYTES_PER_CHAR + len(rows) * _ROW_KEYS_BYTES > max_bytes:
        stored = len(json_rows([row.deal_data for row in rows]))
        if stored > max_bytes:
            problem = (
                f"rejected: parsed, the body would store {stored:,} bytes, over the "
                f"{max_bytes:,} kept per webhook; kept raw, not routed"
            )
            return [rejected(body, content_type, problem, max_bytes)], [None]
    return rows, deals


def _rows(
    form: dict[str, Any], events: list[LeadEvent]
) -> tuple[list[NewLog], list[deal_pb2.Deal | None]]:
    """The rows and deals of a parsed body."""
    if not events:
        row = NewLog(
            source="amocrm",
            deal_data={"form": form},
            routing_decision="ignored",
            processing_status=SUCCESS,
            error_message="no lead events in the body",
        )
        return [row], [None]
    rows: list[NewLog] = []
    deals: list[deal_pb2.Deal | None] = []
    for event in events:
        try:
            deal = deal_from_event(event)
        except FormError as exc:
            rows.append(
                NewLog(
                    source="amocrm",
                    deal_data=event.to_json(),
                    event=event.action,
                    processing_status=ERROR,
                    error_message=str(exc),
                    deal_name=_raw_name(event.lead),
                )
            )
            deals.append(None)
            continue
        rows.append(log_for_deal("amocrm", event.to_json(), deal))
        deals.append(deal)
    return rows, deals


def _raw_name(lead: dict[str, Any]) -> str | None:
    """The lead's name from an event that did not become a deal, unescaped as
    deal_from_event() does; None when it is missing or not text."""
    name = lead.get("name")
    return html.unescape(name) if isinstance(name, str) and name else None


@public_resource
class WebhookResource:
    def __init__(
        self,
        writer: LogWriter,
        routing: RoutingQueue,
        secret: str,
        limits: FormLimits,
        expected_subdomain: str = "",
    ) -> None:
        self.writer = writer
        self.routing = routing
        self.secret = secret
        self.limits = limits
        self.expected_subdomain = expected_subdomain

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.secret:
            raise falcon.HTTPNotFound()
        self._receive(req, resp)

    def on_post_secret(self, req: falcon.Request, resp: falcon.Response, secret: str) -> None:
        if not self.secret or not hmac.compare_digest(secret.encode(), self.secret.encode()):
            raise falcon.HTTPNotFound()
        self._receive(req, resp)

    def _receive(self, req: falcon.Request, resp: falcon.Response) -> None:
        limit = self.limits.max_body_bytes
        if req.content_length is not None and req.content_length > limit:
            sample = req.bounded_stream.read(SAMPLE_BYTES)
            self._refuse(
                sample,
                req,
                f"rejected: body of {req.content_length} bytes is over "
                f"MAX_BODY_BYTES {limit}; first {len(sample)} bytes kept",
            )
            raise falcon.HTTPContentTooLarge(description=f"body over {limit} bytes")
        body = req.bounded_stream.read(limit + 1)
        if len(body) > limit:
            self._refuse(
                body[:SAMPLE_BYTES],
                req,
                f"rejected: body over MAX_BODY_BYTES {limit}; first {SAMPLE_BYTES} bytes kept",
            )
            raise falcon.HTTPContentTooLarge(description=f"body over {limit} bytes")
        if problem := content_type_problem(req.content_type):
            self._refuse(body, req, problem)
            raise falcon.HTTPUnsupportedMediaType(description=problem)
        if len(body) > LARGE_BODY_BYTES:
            with _LARGE_INTAKE:
                rows, deals = intake(body, req.content_type, self.limits, self.expected_subdomain)
        else:
            rows, deals = intake(body, req.content_type, self.limits, self.expected_subdomain)
        # One small dict shared by the request's rows: no extra write, no extra round trip.
        request = {
            "request_id": requestid.current(),
            "content_type": req.content_type,
            "user_agent": (req.user_agent or "")[:MAX_USER_AGENT] or None,
        }
        traceparent = tracing.traceparent()
        rows = [dataclasses.replace(row, traceparent=traceparent, request=request) for row in rows]
        ids = self._log(rows, len(body))
        jobs = []
        for log_id, row, deal in zip(ids, rows, deals, strict=True):
            if deal is None:  # settled at intake: counted now, the others once routed
                WEBHOOKS.labels(
                    routing=row.routing_decision or "none", status=row.processing_status
                ).inc()
            else:
                jobs.append(
                    Job(
                        log_id,
                        deal,
                        request_id=requestid.current(),
                        trace=tracing.current_context(),
                    )
                )
        # Routed after the answer; what this process does not route, the worker does.
        self.routing.submit(jobs)
        # For the one "webhook answered" line the RequestContext middleware writes.
        req.context.logged = {"log_ids": ids, "leads": [r.lead_id for r in rows]}
        resp.media = {
            "success": True,
            "logged": len(ids),
            "log_ids": ids,
            # Where to look: the admin's page of each logged event.
            "links": [f"/admin/#/logs/{log_id}" for log_id in ids],
        }

    def _log(self, rows: list[NewLog], body_bytes: int) -> list[int]:
        """Commit the rows of a body of `body_bytes`, or answer 503 so AmoCRM retries."""
        try:
            return self.writer.insert(rows, large=body_bytes > LARGE_BODY_BYTES)
        except (SQLAlchemyError, TimeoutError):
            log.exception("webhook could not be logged; answering 503 so AmoCRM retries")
            raise falcon.HTTPServiceUnavailable(
                description="the event could not be stored; retry later", retry_after=60
            ) from None

    def _refuse(self, body: bytes, req: falcon.Request, problem: str) -> None:
        max_bytes = self.limits.max_body_bytes * STORED_BYTES_PER_BODY_BYTE
        self._log([rejected(body, req.content_type, problem, max_bytes)], len(body))
        WEBHOOKS.labels(routing="ignored", status=ERROR).inc()
        log.warning("webhook refused", extra={"problem": problem})


@public_resource
class WebhookTestResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {
            "success": True,
            "message": "amoroute webhook endpoint is up",
            "version": __version__,
            "supported_routes": SUPPORTED_ROUTES,
        }


def count_outcomes(outcomes: list[Outcome]) -> None:
    """amoroute_webhooks_total for events routed after their answer: one
    increment per label pair of the batch (each costs a shared-memory write)."""
    counts = Counter((out.decision or "none", out.status) for out in outcomes)
    for (routing, status), count in counts.items():
        WEBHOOKS.labels(routing=routing, status=status).inc(count)
