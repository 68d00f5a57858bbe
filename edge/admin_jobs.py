"""Admin resources over long jobs: POST /api/admin/webhook-logs/replay (bulk replay, or its
dry run), GET /api/admin/jobs, GET and DELETE /api/admin/jobs/{job_id}.

They only translate HTTP to the use cases of edge/jobs.py and back."""

from typing import Any

import falcon

from amoroute import paging
from amoroute.errors import InvalidArgument
from edge.access import admin_of
from edge.admin_json import iso
from edge.admin_params import INT64_MAX, LOG_FILTERS, Params, bad_param, json_body, log_filters
from edge.job_store import JobRow, JobStore
from edge.jobs import NotCancellable, NothingToReplay, cancel, count_matching, start_replay
from edge.log_store import WebhookLogStore

API_PREFIX = "/api/admin"
MAX_BODY_BYTES = 16_384
BODY_FIELDS = ("filters", "dry_run")
MAX_JOBS_PAGE = 100
DEFAULT_JOBS_PAGE = 20


def job_json(job: JobRow) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "total": job.total,
        "done": job.done,
        "failed": job.failed,
        "created_by": job.created_by,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "error": job.error,
        "request": job.request,
    }


def _json_object(req: falcon.Request) -> dict[str, Any]:
    body = json_body(req, MAX_BODY_BYTES, f"a JSON object with {', '.join(BODY_FIELDS)}")
    if not isinstance(body, dict):
        raise bad_param("body", f"must be a JSON object with {', '.join(BODY_FIELDS)}")
    for name in body:
        if name not in BODY_FIELDS:
            raise bad_param(name, f"unknown field; the body takes {', '.join(BODY_FIELDS)}")
    return body


def _filter_params(filters: object) -> Params:
    """The body's filters as the list view's query parameters: each a string, status and
    routing also a list of strings, lead_id also an integer."""
    if filters is None:
        filters = {}
    if not isinstance(filters, dict):
        raise bad_param("filters", f"must be an object with any of {', '.join(LOG_FILTERS)}")
    params: dict[str, str | list[str]] = {}
    for name, value in filters.items():
        if value is None:
            continue
        if isinstance(value, int) and not isinstance(value, bool) and name == "lead_id":
            params[name] = str(value)
        elif isinstance(value, str):
            params[name] = value
        elif (
            isinstance(value, list)
            and name in ("status", "routing")
            and all(isinstance(v, str) for v in value)
        ):
            params[name] = value
        else:
            raise bad_param(name, "must be a string, as in the list view's query")
    return Params(params, LOG_FILTERS)


class BulkReplayResource:
    """POST /api/admin/webhook-logs/replay."""

    def __init__(self, logs: WebhookLogStore, jobs: JobStore) -> None:
        self.logs = logs
        self.jobs = jobs

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _json_object(req)
        query = log_filters(_filter_params(body.get("filters")))
        dry_run = body.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise bad_param("dry_run", "must be true or false")
        if dry_run:
            resp.media = {"matching": count_matching(self.logs, query)}
            return
        try:
            job = start_replay(self.jobs, self.logs, admin_of(req), query)
        except NothingToReplay:
            raise bad_param("filters", "no stored event matches them: nothing to replay") from None
        resp.status = falcon.HTTP_202
        resp.location = f"{API_PREFIX}/jobs/{job.id}"
        resp.media = {"job": job_json(job)}


def _job_id(value: int) -> int:
    if not 1 <= value <= INT64_MAX:
        raise bad_param("job_id", f"must be a job id, an integer from 1 to {INT64_MAX}")
    return value


class JobsResource:
    """GET /api/admin/jobs, GET and DELETE /api/admin/jobs/{job_id}."""

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = Params(req, ("limit", "cursor"))
        limit = params.integer("limit", 1, MAX_JOBS_PAGE, DEFAULT_JOBS_PAGE) or DEFAULT_JOBS_PAGE
        try:
            before_id = paging.decode_token(params.text("cursor") or "")
        except InvalidArgument:
            raise bad_param("cursor", "is not a next_cursor this API returned") from None
        items, next_before = self.jobs.page(limit, before_id)
        resp.media = {
            "items": [job_json(job) for job in items],
            "next_cursor": None if next_before is None else paging.encode_token(next_before),
        }

    def on_get_one(self, req: falcon.Request, resp: falcon.Response, job_id: int) -> None:
        job = self.jobs.get(_job_id(job_id))
        if job is None:
            raise falcon.HTTPNotFound(description=f"no job {job_id}")
        resp.media = job_json(job)

    def on_delete_one(self, req: falcon.Request, resp: falcon.Response, job_id: int) -> None:
        try:
            job = cancel(self.jobs, _job_id(job_id), admin_of(req))
        except LookupError:
            raise falcon.HTTPNotFound(description=f"no job {job_id}") from None
        except NotCancellable as exc:
            raise falcon.HTTPConflict(description=str(exc)) from None
        resp.media = job_json(job)
