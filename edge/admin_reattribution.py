"""POST /api/admin/reattribution/preview: what candidate rules would change among the won
deals received in a range (edge/reattribution.py), over the router's BatchExplainRoutes.
Writes nothing.

POST /api/admin/reattribution applies it: the candidate becomes the new rules version
(the router's UpdateRules, as PUT /api/admin/rules) and a job re-routes every changed deal
(edge/jobs.py, edge/reattribution_apply.py); GET /api/admin/reattribution/{job_id} shows
its progress."""

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import falcon
import grpc

from amoroute.v1 import deal_pb2, router_pb2, router_pb2_grpc
from edge.access import admin_of
from edge.admin_json import iso
from edge.admin_params import (
    INT64_MAX,
    Params,
    bad_param,
    json_body,
    log_filters,
    parse_moment,
)
from edge.admin_rules import (
    MAX_COMMENT,
    MAX_YAML,
    RULES_TIMEOUT_S,
    RulesResource,
    StaleVersion,
    read_edit,
    read_only_reason,
    version_json,
)
from edge.job_store import JobRow, JobStore
from edge.jobs import RulesChange, start_reattribution
from edge.log_store import LogQuery, WebhookLogStore
from edge.reattribution import Explain, Preview, UndecidableDeal, timed_preview
from edge.replay import REATTRIBUTION
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


API_PREFIX = "/api/admin"
APPLY_FIELDS = (*FIELDS, "expected_version", "announce", "comment")
MAX_APPLY_BODY_BYTES = MAX_BODY_BYTES + 6 * MAX_COMMENT
NOTHING_TO_DO = (
    "nothing to re-attribute: under these rules no won deal in the range changes hands; "
    "no rules version was stored (PUT /api/admin/rules stores rules without re-attributing)"
)


def preview_json(result: Preview) -> dict[str, Any]:
    """The figures of a preview a re-attribution started from (no change list)."""
    return {
        "events": result.events,
        "changed": result.changed,
        "skipped": result.skipped,
        "totals": result.totals(),
    }


def reattribution_json(job: JobRow) -> dict[str, Any]:
    """A re-attribution job as GET /api/admin/reattribution/{job_id} shows it."""
    request = job.request
    filters = dict(request.get("filters") or {})
    links = {
        "self": f"{API_PREFIX}/reattribution/{job.id}",
        "job": f"{API_PREFIX}/jobs/{job.id}",
        "rules_versions": f"{API_PREFIX}/rules/versions",
    }
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "total": job.total,
        "done": job.done,
        "failed": job.failed,
        "changes": {
            kind: (request.get("changes") or {}).get(kind, 0)
            for kind in ("credited", "reattributed", "withdrawn")
        },
        "created_by": job.created_by,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "from_version": request.get("from_version"),
        "to_version": request.get("to_version"),
        "announce": bool(request.get("announce")),
        "received_from": filters.pop("received_from", None),
        "received_to": filters.pop("received_to", None),
        "filters": filters,
        "preview": request.get("preview"),
        "error": job.error,
        "links": links,
    }


@dataclass(frozen=True)
class ApplyRequest:
    """A POST /api/admin/reattribution body, checked."""

    preview: PreviewRequest
    expected_version: int
    comment: str
    announce: bool


def read_apply(body: object) -> ApplyRequest:
    """The body of POST /api/admin/reattribution: the preview's, the version the
    candidate was edited from, whether to announce, a comment; 400 naming the field."""
    if not isinstance(body, dict):
        raise bad_param("body", f"must be a JSON object with {', '.join(APPLY_FIELDS)}")
    for name in body:
        if name not in APPLY_FIELDS:
            raise bad_param(
                str(name)[:64], f"unknown field; this endpoint takes {', '.join(APPLY_FIELDS)}"
            )
    asked = read_preview({k: v for k, v in body.items() if k in FIELDS})
    edit = read_edit(
        {k: body[k] for k in ("yaml", "expected_version", "comment") if k in body}
    )
    announce = body.get("announce", False)
    if not isinstance(announce, bool):
        raise bad_param("announce", "must be true or false")
    return ApplyRequest(asked, edit.expected_version, edit.comment, announce)


def _job_id(value: int) -> int:
    if not 1 <= value <= INT64_MAX:
        raise bad_param("job_id", f"must be a job id, an integer from 1 to {INT64_MAX}")
    return value


class ReattributionResource(ReattributionPreviewResource):
    """POST /api/admin/reattribution: store the candidate rules and start the job that
    re-routes what they change; GET /api/admin/reattribution/{job_id}: its progress."""

    def __init__(
        self,
        logs: WebhookLogStore,
        jobs: JobStore,
        router: grpc.Channel,
        address: str,
        subdomain: str = "",
    ) -> None:
        super().__init__(logs, router, address, subdomain)
        self.jobs = jobs
        self.rules = RulesResource(router, address)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        asked = read_apply(
            json_body(
                req, MAX_APPLY_BODY_BYTES, f"a JSON object with {', '.join(APPLY_FIELDS)}"
            )
        )
        # Refused before the scan when the rules cannot change anyway.
        current = self.rules.current_rules()
        if current.source == router_pb2.RULES_SOURCE_FILE:
            raise falcon.HTTPForbidden(
                title="Rules are read-only", description=read_only_reason(current.path)
            )
        if current.current.version != asked.expected_version:
            raise StaleVersion(
                f"rules are at version {current.current.version}, the edit started from "
                f"version {asked.expected_version}; reload and preview again",
                current.current,
            )
        result, _ = timed_preview(
            self.logs, self._explain(asked.preview.yaml), asked.preview.query, self.subdomain
        )
        if result.changed == 0:
            resp.media = {
                "job": None,
                "message": NOTHING_TO_DO,
                "rules_version": current.current.version,
                "preview": preview_json(result),
            }
            return
        request = router_pb2.UpdateRulesRequest(
            yaml=asked.preview.yaml,
            expected_version=asked.expected_version,
            author=admin_of(req),
            comment=asked.comment,
        )
        try:
            stored = self.stub.UpdateRules(request, timeout=RULES_TIMEOUT_S).version
        except grpc.RpcError as exc:
            raise self.rules.update_error(exc) from None
        change = RulesChange(current.current.version, current.current.yaml, stored.version)
        job = start_reattribution(
            self.jobs, self.logs, admin_of(req), asked.preview.query, change, asked.announce,
            result,
        )
        body = reattribution_json(job)
        resp.status = falcon.HTTP_202
        resp.location = body["links"]["self"]
        resp.media = {"job": body, "rules_version": version_json(stored)}

    def on_get_one(self, req: falcon.Request, resp: falcon.Response, job_id: int) -> None:
        job = self.jobs.get(_job_id(job_id))
        if job is None or job.kind != REATTRIBUTION:
            raise falcon.HTTPNotFound(description=f"no re-attribution job {job_id}")
        resp.media = reattribution_json(job)
