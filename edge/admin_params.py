"""The admin API's query and path parameters, read and checked: a 400 names the parameter."""

import dataclasses
import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta

import falcon

from amoroute import paging
from amoroute.errors import InvalidArgument
from amoroute.timeutil import in_range
from edge.event_lifecycle import DECISIONS, STATUSES
from edge.log_store import LogQuery

MAX_PAGE = 200
DEFAULT_PAGE = 50
MAX_SEARCH = 200
MAX_WINDOW = timedelta(days=366)
INT64_MAX = 2**63 - 1
_WINDOW_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_SOURCE = re.compile(r"[a-z][a-z0-9_]{0,19}")


def bad_param(name: str, problem: str) -> falcon.HTTPBadRequest:
    """The 400 answer for parameter `name`."""
    return falcon.HTTPBadRequest(description=f"{name}: {problem}")


def json_body(req: falcon.Request, max_bytes: int, expected: str) -> object:
    """The request's body parsed as JSON: 415 unless it is sent as application/json, 413
    over `max_bytes` (read within that bound, whatever Content-Length says or whether it is
    sent at all), 400 naming `body` when it is not JSON; `expected` says what the body
    should be ("a JSON object with yaml, ...")."""
    if (req.content_type or "").split(";")[0].strip().lower() != falcon.MEDIA_JSON:
        raise falcon.HTTPUnsupportedMediaType(description="send the body as application/json")
    raw = req.bounded_stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise falcon.HTTPContentTooLarge(description=f"body over {max_bytes} bytes")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested beyond reason
        raise bad_param("body", f"must be {expected}") from None


class Params:
    """A request's query parameters, read one by one; each error names the parameter."""

    def __init__(
        self, req: falcon.Request | Mapping[str, str | list[str]], allowed: tuple[str, ...]
    ) -> None:
        # A mapping: the same parameters sent in a JSON body (e.g. a preview's filters).
        self.params = req.params if isinstance(req, falcon.Request) else req
        for name, value in self.params.items():
            if name not in allowed:
                raise bad_param(
                    name, f"unknown parameter; this endpoint takes {', '.join(allowed)}"
                )
            # The database cannot compare text with NUL in it: refuse it here, by name.
            if any("\x00" in v for v in (value if isinstance(value, list) else [value])):
                raise bad_param(name, "must not contain NUL characters")

    def text(self, name: str) -> str | None:
        value = self.params.get(name)
        if isinstance(value, list):
            raise bad_param(name, "given more than once")
        value = (value or "").strip()
        return value or None

    def choices(self, name: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        """One or more of `allowed`, as repeated parameters or comma-separated."""
        raw = self.params.get(name)
        values = raw if isinstance(raw, list) else [raw] if raw is not None else []
        chosen = [v.strip() for value in values for v in value.split(",") if v.strip()]
        for value in chosen:
            if value not in allowed:
                raise bad_param(name, f"must be one of {', '.join(allowed)}")
        return tuple(dict.fromkeys(chosen))

    def integer(self, name: str, low: int, high: int, default: int | None = None) -> int | None:
        value = self.text(name)
        if value is None:
            return default
        if not re.fullmatch(r"[0-9]{1,19}", value) or not low <= int(value) <= high:
            raise bad_param(name, f"must be an integer from {low} to {high}")
        return int(value)

    def flag(self, name: str) -> bool:
        """true or false (also 1 or 0); absent is false."""
        value = self.text(name)
        if value is None:
            return False
        if value.lower() not in ("true", "false", "1", "0"):
            raise bad_param(name, "must be true or false")
        return value.lower() in ("true", "1")

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
        raise bad_param(
            name, f"{value!r} is not an ISO 8601 date or time, e.g. 2025-06-01T09:00:00+05:00"
        ) from None
    try:
        return in_range(name, moment)
    except InvalidArgument as exc:
        raise bad_param(name, exc.problem) from None


def log_id_param(value: int) -> int:
    """The {log_id} of a path: Falcon's int converter takes any size, the table's ids
    are positive int64."""
    if not 1 <= value <= INT64_MAX:
        raise bad_param("log_id", f"must be a webhook log id, an integer from 1 to {INT64_MAX}")
    return value


def time_range(params: Params, start: str, end: str) -> tuple[datetime | None, datetime | None]:
    """Two moments bounding a range, either open; the end must come after the start."""
    since, until = params.moment(start), params.moment(end)
    if since and until and until <= since:
        raise bad_param(end, f"must be later than {start}")
    return since, until


def parse_window(value: str | None) -> tuple[str, timedelta]:
    """`24h`, `7d`, `30m`… -> (label, length); default 24 h, at most 366 days."""
    label = value or "24h"
    match = re.fullmatch(r"([1-9][0-9]{0,5})([mhd])", label)
    if not match:
        raise bad_param("window", "must be a number and a unit m, h or d, e.g. 1h, 24h, 7d, 30d")
    length = timedelta(**{_WINDOW_UNITS[match[2]]: int(match[1])})
    if length > MAX_WINDOW:
        raise bad_param("window", "must be at most 366d")
    return label, length


# The filters of the log list, without its page (limit, cursor).
LOG_FILTERS = ("status", "routing", "lead_id", "source", "received_from", "received_to", "q")
# How the log list answers: JSON pages (with the total when asked) or one CSV export.
LIST_OPTIONS = ("format", "total")
_LOG_LIST = (*LOG_FILTERS, "limit", "cursor", *LIST_OPTIONS)
FORMATS = ("json", "csv")


def format_of(params: Params) -> str:
    """`format` of an answer that can be a CSV export: json (default) or csv."""
    chosen = params.text("format") or "json"
    if chosen not in FORMATS:
        raise bad_param("format", f"must be one of {', '.join(FORMATS)}")
    return chosen


def list_format(req: falcon.Request) -> str:
    """`format` of a list endpoint: json (default) or csv. A CSV export holds every
    match, so it takes no page (limit, cursor)."""
    params = Params(req, _LOG_LIST)
    chosen = format_of(params)
    if chosen == "csv":
        for name in ("limit", "cursor", "total"):
            if params.text(name) is not None:
                raise bad_param(name, "not taken with format=csv: the export holds every match")
    return chosen


def wants_total(req: falcon.Request) -> bool:
    """`total=true`: the list's answer also counts every match of its filters."""
    return Params(req, _LOG_LIST).flag("total")


def log_query(req: falcon.Request) -> LogQuery:
    """The filters of GET /api/admin/webhook-logs."""
    params = Params(req, _LOG_LIST)
    cursor = params.text("cursor")
    try:
        before_id = paging.decode_token(cursor or "")
    except InvalidArgument:
        raise bad_param("cursor", "is not a next_cursor this API returned") from None
    return dataclasses.replace(
        log_filters(params),
        before_id=before_id,
        limit=params.integer("limit", 1, MAX_PAGE, DEFAULT_PAGE) or DEFAULT_PAGE,
    )


def log_filters(params: Params) -> LogQuery:
    """The log list's filters (LOG_FILTERS) read from `params`, as a LogQuery's."""
    source = params.text("source")
    if source is not None and not _SOURCE.fullmatch(source):
        raise bad_param("source", "must be a source name such as amocrm, replay or reconcile")
    text = params.text("q")
    if text is not None and len(text) > MAX_SEARCH:
        raise bad_param("q", f"must be at most {MAX_SEARCH} characters")
    received_from, received_to = time_range(params, "received_from", "received_to")
    return LogQuery(
        statuses=params.choices("status", STATUSES),
        decisions=params.choices("routing", DECISIONS),
        lead_id=params.integer("lead_id", 1, INT64_MAX),
        source=source,
        received_from=received_from,
        received_to=received_to,
        text=text,
    )
