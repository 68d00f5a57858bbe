"""POST /api/admin/reattribution/preview: what candidate rules would change among the won
deals received in a range (edge/reattribution.py), over the router's BatchExplainRoutes.
Writes nothing."""

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import falcon
import grpc

from amoroute.v1 import deal_pb2, router_pb2, router_pb2_grpc
from edge.admin_params import Params, bad_param, json_body, log_filters, parse_moment
from edge.admin_rules import MAX_YAML
from edge.log_store import LogQuery, WebhookLogStore
from edge.reattribution import Explain, UndecidableDeal, timed_preview
from edge.upstream import upstream_error

SERVICE = "router_svc"
FIELDS = ("yaml", "received_from", "received_to", "filters")
# The list view's filters a preview takes; its range is the preview's own fields.
FILTERS = ("status", "routing", "lead_id", "source", "q")
# The YAML escaped as JSON may take up to six bytes a character.
MAX_BODY_BYTES = 6 * MAX_YAML + 4_000
# Deadline of one BatchExplainRoutes call (a chunk of deals).
EXPLAIN_TIMEOUT_S = 30.0
_REFUSED_DEAL = re.compile(r"deals\[(\d+)\]")


@dataclass(frozen=True)
class PreviewRequest:
    """A preview body, checked."""

    yaml: str
    query: LogQuery


def _yaml(body: dict[str, Any]) -> str:
    value = body.get("yaml")
    if not isinstance(value, str) or not value.strip():
        raise bad_param("yaml", "is required: the candidate rules document as YAML text")
    if len(value) > MAX_YAML:
        raise bad_param("yaml", f"must be at most {MAX_YAML} characters")
    if "\x00" in value:
        raise bad_param("yaml", "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_param("yaml", "must be Unicode text (it holds a lone surrogate)") from None
    return value


def _moment(body: dict[str, Any], name: str) -> datetime:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise bad_param(name, "is required: an ISO 8601 date or time, e.g. 2025-06-01T00:00:00Z")
    return parse_moment(name, value)


def _filters(value: object) -> LogQuery:
    """The list view's filters, as its query parameters would give them; a 400 names
    `filters.<name>`."""
    if value is None:
        return LogQuery()
    if not isinstance(value, dict):
        raise bad_param("filters", f"must be a JSON object with any of {', '.join(FILTERS)}")
    params: dict[str, str | list[str]] = {}
    for name, given in value.items():
        if name not in FILTERS:
            raise bad_param(
                f"filters.{str(name)[:64]}", f"unknown filter; filters are {', '.join(FILTERS)}"
            )
        if isinstance(given, str):
            params[name] = given
        elif isinstance(given, int) and not isinstance(given, bool):
            params[name] = str(given)
        elif isinstance(given, list) and all(isinstance(v, str) for v in given):
            params[name] = given
        elif given is not None:
            raise bad_param(f"filters.{name}", "must be a string, a number or a list of strings")
    try:
        return log_filters(Params(params, FILTERS))
    except falcon.HTTPBadRequest as exc:
        raise falcon.HTTPBadRequest(description=f"filters.{exc.description}") from None


def read_preview(body: object) -> PreviewRequest:
    """The body of POST /api/admin/reattribution/preview; 400 naming the field at fault."""
    if not isinstance(body, dict):
        raise bad_param("body", f"must be a JSON object with {', '.join(FIELDS)}")
    for name in body:
        if name not in FIELDS:
            raise bad_param(
                str(name)[:64], f"unknown field; this endpoint takes {', '.join(FIELDS)}"
            )
    yaml = _yaml(body)
    received_from = _moment(body, "received_from")
    received_to = _moment(body, "received_to")
    if received_to <= received_from:
        raise bad_param("received_to", "must be later than received_from")
    query = replace(
        _filters(body.get("filters")), received_from=received_from, received_to=received_to
    )
    return PreviewRequest(yaml, query)


class ReattributionPreviewResource:
    """POST /api/admin/reattribution/preview."""

    def __init__(
        self, logs: WebhookLogStore, router: grpc.Channel, address: str, subdomain: str = ""
    ) -> None:
        self.logs = logs
        self.stub = router_pb2_grpc.RouterServiceStub(router)
        self.address = address
        self.subdomain = subdomain

    def _explain(self, candidate: str) -> Explain:
        def explain(deals: list[deal_pb2.Deal]) -> router_pb2.BatchExplainRoutesResponse:
            request = router_pb2.BatchExplainRoutesRequest(
                deals=deals, candidate_rules_yaml=candidate
            )
            try:
                reply: router_pb2.BatchExplainRoutesResponse = self.stub.BatchExplainRoutes(
                    request, timeout=EXPLAIN_TIMEOUT_S
                )
                return reply
            except grpc.RpcError as exc:
                raise self._error(exc) from None

        return explain

    def _error(self, exc: grpc.RpcError) -> Exception:
        details = exc.details() or ""
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            if details.startswith("candidate_rules_yaml: "):
                return bad_param("yaml", details.removeprefix("candidate_rules_yaml: "))
            refused = _REFUSED_DEAL.match(details)
            if refused:
                return UndecidableDeal(int(refused[1]), details)
        return upstream_error(SERVICE, self.address, exc)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        asked = read_preview(
            json_body(req, MAX_BODY_BYTES, f"a JSON object with {', '.join(FIELDS)}")
        )
        result, duration_ms = timed_preview(
            self.logs, self._explain(asked.yaml), asked.query, self.subdomain
        )
        resp.media = {
            "rules_version": result.rules_version,
            "events": result.events,
            "changed": result.changed,
            "skipped": result.skipped,
            "totals": result.totals(),
            "changes": result.changes,
            "changes_total": result.changed,
            "duration_ms": duration_ms,
        }
