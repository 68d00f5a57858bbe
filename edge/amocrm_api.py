"""AmoCRM REST API v4 client (leads, webhooks) and the mapping of an API lead to a Deal proto.

AmoCRM allows 7 requests a second per integration, answers 429 above that and blocks the
integration (403) on repeated abuse, so every attempt, retries included, waits for its turn on
one per-client pacer. Failures that may pass (429, 5xx, network) are retried with exponential
backoff; a refused token (401/403) or a bad request (other 4xx) is raised at once. A 403 that
follows 429s is AmoCRM's block: the client makes no call at all for `block_pause_s`
(AmoCrmBlocked), sets amoroute_amocrm_blocked and tells `on_blocked`.

The bearer token travels only in the Authorization header: never in a URL, an exception
message or a log line. It is either a static long-lived token or a TokenSource (OAuth 2.0,
edge/amocrm_tokens.py) asked before every request; a 401 then renews it once.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx
import prometheus_client
from google.protobuf.timestamp_pb2 import Timestamp

from amoroute.backoff import Backoff
from amoroute.v1 import deal_pb2
from edge import amocrm_values
from edge.amocrm_values import BadValue, show

log = logging.getLogger(__name__)

LEADS_PATH = "/api/v4/leads"
EVENTS_PATH = "/api/v4/events"
WEBHOOKS_PATH = "/api/v4/webhooks"
PIPELINES_PATH = "/api/v4/leads/pipelines"
CUSTOM_FIELDS_PATH = "/api/v4/leads/custom_fields"
# AmoCRM's maximum `limit` for custom fields (leads allow 250).
CUSTOM_FIELDS_PAGE_SIZE = 50
MAX_PAGE_SIZE = 250  # AmoCRM's maximum `limit`, also the most ids one filter[id][] call takes
MAX_EVENTS_PAGE_SIZE = 100  # the events endpoint's maximum `limit`
STATUS_CHANGED = "lead_status_changed"

# A 403 this soon after a 429 is AmoCRM blocking the integration for abuse, not a
# missing right.
BLOCK_AFTER_429_S = 600.0
# How long calls stop after a block, unless the client is told otherwise
# (AMOCRM_BLOCK_PAUSE_S); AmoCRM does not say how long its blocks last.
DEFAULT_BLOCK_PAUSE_S = 900.0
BLOCKED = prometheus_client.Gauge(
    "amoroute_amocrm_blocked",
    "1 while AmoCRM blocks the integration (a 403 after 429s): no AmoCRM API call is made "
    "until the pause ends.",
    # Under gunicorn's workers (and next to the worker): blocked if any process is.
    multiprocess_mode="livemax",
)

# Added to every spacing: AmoCRM counts requests per second as they arrive, and arrival
# jitter would otherwise let a window see rate_per_s + 1 of them (1/6 s apart, 7 span 1 s).
_SPACING_MARGIN_S = 0.01
# 1 s before the first retry of a call, doubling up to 30 s; the first call and
# four retries by default (AmoCrmClient's max_retries).
RETRIES = Backoff(first_s=1.0, max_s=30.0, tries=5)


class AmoCrmError(Exception):
    """AmoCRM did not give what was asked; the message says what happened and what to do."""


class AmoCrmAuthError(AmoCrmError):
    """AmoCRM refused the credentials (401) or the access (403); retrying will not help."""


class AmoCrmBlocked(AmoCrmError):
    """AmoCRM blocks the integration (a 403 after 429s): the client makes no call for
    `pause_s` more seconds."""

    def __init__(self, message: str, pause_s: float) -> None:
        super().__init__(message)
        self.pause_s = pause_s


class TokenSource(Protocol):
    """Where the access token comes from when it rotates (OAuth 2.0)."""

    def current(self) -> str:
        """A token to send now."""
        ...

    def after_unauthorized(self, stale: str) -> str:
        """AmoCRM answered 401 to `stale`: a renewed token (raises AmoCrmAuthError if none)."""
        ...


@dataclass(frozen=True)
class WebhookRegistration:
    """One webhook registered on the account, as `GET /api/v4/webhooks` lists it."""

    destination: str
    # AmoCRM disables a hook after too many failed deliveries; an admin must re-enable it.
    disabled: bool
    # Events the hook fires on, e.g. ("status_lead", "add_lead").
    settings: tuple[str, ...]


@dataclass(frozen=True)
class StatusChange:
    """One `lead_status_changed` event of `GET /api/v4/events`: the lead moved from
    `before` to `after`, each (pipeline id, status id), at `created_at` (unix seconds)."""

    event_id: str
    lead_id: int
    created_at: int
    account_id: int
    before: tuple[int, int] | None
    after: tuple[int, int] | None

    def to_json(self) -> dict[str, Any]:
        """The form stored with a logged event (webhook_logs.deal_data["api_event"])."""
        return {
            "id": self.event_id,
            "lead_id": self.lead_id,
            "created_at": self.created_at,
            "account_id": self.account_id,
            "before": list(self.before) if self.before else None,
            "after": list(self.after) if self.after else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StatusChange:
        """The inverse of to_json()."""
        before, after = data.get("before"), data.get("after")
        return cls(
            event_id=str(data["id"]),
            lead_id=int(data["lead_id"]),
            created_at=int(data["created_at"]),
            account_id=int(data.get("account_id") or 0),
            before=(int(before[0]), int(before[1])) if before else None,
            after=(int(after[0]), int(after[1])) if after else None,
        )


class _Pacer:
    """Spaces request starts at least `interval_s` apart across threads.

    One caller at a time waits for its turn, and the next turn is booked from the moment the
    call actually starts, so an oversleeping thread never lets the next one start early.
    """

    def __init__(
        self, interval_s: float, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._sleep = sleep
        self._turn = threading.Lock()
        self._state = threading.Lock()
        self._next_start = -math.inf

    def wait_turn(self) -> None:
        with self._turn:
            while True:
                with self._state:
                    delay = self._next_start - self._clock()
                # A nanosecond is rounding, not waiting: a fake clock may land a hair short.
                if delay <= 1e-9:
                    break
                self._sleep(delay)
            with self._state:
                self._next_start = self._clock() + self._interval_s

    def hold(self, seconds: float) -> None:
        """No request starts for `seconds` (after a 429, for every thread)."""
        with self._state:
            self._next_start = max(self._next_start, self._clock() + seconds)


class AmoCrmClient:
    """AmoCRM API v4 over one reused HTTP connection pool; thread-safe.

    `base_url` is the account's API root, e.g. `https://onaiagencykz.amocrm.ru`. `public_host`
    is the host AmoCRM names in its own `_links` when `base_url` points elsewhere (a test
    server, an egress proxy); it defaults to the host of `base_url`. Pagination links are
    followed only on those hosts, and always sent to `base_url`.

    Request starts, retries included, are spaced at least 1/`rate_per_s` (plus 10 ms for
    arrival jitter) apart. `timeout_s` bounds each network phase (connect, send, each read).
    `max_retries` counts the retries after the first attempt. `sleep` and `clock` are
    injectable so tests need no real waiting; they must agree (sleeping `s` advances `clock`
    by at least `s`). `block_pause_s`: how long no call is made once AmoCRM blocks the
    integration; `on_blocked(pause_s)` is told when that happens (the edge records it for
    /readyz and every other process).
    """

    def __init__(
        self,
        base_url: str,
        token: str | TokenSource,
        *,
        rate_per_s: float = 6.0,
        timeout_s: float = 10.0,
        max_retries: int = RETRIES.tries - 1,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        public_host: str | None = None,
        block_pause_s: float = DEFAULT_BLOCK_PAUSE_S,
        on_blocked: Callable[[float], None] | None = None,
    ) -> None:
        base = urlsplit(base_url.strip())
        if base.scheme not in ("http", "https") or not base.hostname:
            raise ValueError(
                f"AmoCRM base URL {base_url!r} is not an http(s) URL; expected e.g. "
                "https://<subdomain>.amocrm.ru"
            )
        if isinstance(token, str) and not token:
            raise ValueError("AmoCRM access token is empty: set AMOCRM_ACCESS_TOKEN")
        if rate_per_s <= 0:
            raise ValueError(f"rate_per_s must be positive (AmoCRM allows 7/s); got {rate_per_s}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more; got {max_retries}")
        if block_pause_s <= 0:
            raise ValueError(f"block_pause_s must be positive; got {block_pause_s}")
        self._scheme, self._netloc = base.scheme, base.netloc
        self._link_hosts = {base.hostname.lower(), (public_host or base.hostname).lower()}
        self._source = token if not isinstance(token, str) else None
        self._token = token if isinstance(token, str) else ""
        self._retries = replace(RETRIES, tries=max_retries + 1)
        self._sleep = sleep
        self._clock = clock
        self._block_pause_s = block_pause_s
        self._on_blocked = on_blocked
        self._state = threading.Lock()
        self._last_429_at = -math.inf  # on `clock`
        self._blocked_until = -math.inf
        self._pacer = _Pacer(1.0 / rate_per_s + _SPACING_MARGIN_S, clock, sleep)
        self._http = httpx.Client(
            headers={
                "Accept": "application/hal+json, application/json",
                "User-Agent": "amoroute",
            },
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
        )

    def get_leads(self, ids: Iterable[int]) -> list[dict[str, Any]]:
        """The leads with these ids, as AmoCRM's raw JSON objects, in AmoCRM's order.

        Ids are deduplicated and asked for in batches of up to 250 (`filter[id][]`), one
        request per batch page. Ids AmoCRM does not know (deleted leads) are simply absent.
        """
        unique = list(dict.fromkeys(_positive_id(lead_id) for lead_id in ids))
        leads: list[dict[str, Any]] = []
        for start in range(0, len(unique), MAX_PAGE_SIZE):
            batch = unique[start : start + MAX_PAGE_SIZE]
            params = [("filter[id][]", str(lead_id)) for lead_id in batch]
            params.append(("limit", str(MAX_PAGE_SIZE)))
            leads.extend(self._leads_pages(params))
        return leads

    def iter_won_leads(
        self,
        pipeline_ids: Iterable[int],
        won_status_ids: Iterable[int],
        updated_from: int,
        limit: int = 250,
    ) -> Iterator[dict[str, Any]]:
        """Leads in any of `won_status_ids` of any of `pipeline_ids` (every pair is asked
        for, since status 142 exists in every pipeline) updated at or after `updated_from`
        (unix seconds), oldest update first, page by page as the caller consumes them.
        """
        pipelines = [_positive_id(p) for p in pipeline_ids]
        statuses = [_positive_id(s) for s in won_status_ids]
        # An empty status filter would make AmoCRM return every lead of the account.
        if not pipelines or not statuses:
            raise ValueError("iter_won_leads needs at least one pipeline id and one status id")
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be 1..{MAX_PAGE_SIZE}; got {limit}")
        params: list[tuple[str, str]] = []
        for i, (pipeline_id, status_id) in enumerate(itertools.product(pipelines, statuses)):
            params.append((f"filter[statuses][{i}][pipeline_id]", str(pipeline_id)))
            params.append((f"filter[statuses][{i}][status_id]", str(status_id)))
        params += [
            ("filter[updated_at][from]", str(int(updated_from))),
            ("order[updated_at]", "asc"),
            ("limit", str(limit)),
        ]
        return self._leads_pages(params)

    def iter_status_changes(
        self,
        pipeline_ids: Iterable[int],
        won_status_ids: Iterable[int],
        created_from: int,
        created_to: int,
        *,
        into: bool,
        limit: int = MAX_EVENTS_PAGE_SIZE,
    ) -> Iterator[StatusChange]:
        """`lead_status_changed` events created in [`created_from`, `created_to`] (unix
        seconds) that moved a lead into (`into`) or out of (not `into`) any won status of any
        of the pipelines (every pair is asked for: `filter[value_after|value_before]
        [leads_statuses][N][pipeline_id|status_id]`), page by page along `_links.next`, in
        AmoCRM's order (newest first). Raises AmoCrmError for an event that is not one.
        """
        pipelines = [_positive_id(p) for p in pipeline_ids]
        statuses = [_positive_id(s) for s in won_status_ids]
        # An empty status filter would list every status change of the account.
        if not pipelines or not statuses:
            raise ValueError("iter_status_changes needs at least one pipeline and one status id")
        if not 1 <= limit <= MAX_EVENTS_PAGE_SIZE:
            raise ValueError(f"limit must be 1..{MAX_EVENTS_PAGE_SIZE}; got {limit}")
        side = "value_after" if into else "value_before"
        params: list[tuple[str, str]] = [
            ("filter[type]", STATUS_CHANGED),
            ("filter[entity][]", "lead"),
            ("filter[created_at][from]", str(int(created_from))),
            ("filter[created_at][to]", str(int(created_to))),
        ]
        for i, (pipeline_id, status_id) in enumerate(itertools.product(pipelines, statuses)):
            params.append((f"filter[{side}][leads_statuses][{i}][pipeline_id]", str(pipeline_id)))
            params.append((f"filter[{side}][leads_statuses][{i}][status_id]", str(status_id)))
        params.append(("limit", str(limit)))
        for event in self._pages(EVENTS_PATH, "events", params):
            change = status_change(event)
            if change is not None:
                yield change

    def blocked_for_s(self) -> float:
        """Seconds until AmoCRM's block of the integration ends (0: not blocked)."""
        with self._state:
            left = self._blocked_until - self._clock()
        if left <= 0 and self._blocked_until > -math.inf:
            BLOCKED.set(0)
        return max(0.0, left)

    def list_webhooks(self) -> list[WebhookRegistration]:
        """Webhooks registered on the account, disabled ones included."""
        body = self._get(self._url(WEBHOOKS_PATH), None)
        hooks = _embedded(body, "webhooks", WEBHOOKS_PATH)
        return [
            WebhookRegistration(
                destination=str(hook.get("destination") or ""),
                disabled=bool(hook.get("disabled")),
                settings=tuple(str(setting) for setting in hook.get("settings") or ()),
            )
            for hook in hooks
        ]

    def register_webhook(self, destination: str, events: Iterable[str]) -> WebhookRegistration:
        """Subscribe `destination` to `events` (`POST /api/v4/webhooks`): a new hook, or the
        one with that destination updated and enabled again. Sent once: a failure is raised."""
        body = self._post(
            WEBHOOKS_PATH, {"destination": destination, "settings": list(events), "sort": 10}
        )
        return WebhookRegistration(
            destination=str(body.get("destination") or destination),
            disabled=bool(body.get("disabled")),
            settings=tuple(str(setting) for setting in body.get("settings") or ()),
        )

    def list_pipelines(self) -> list[dict[str, Any]]:
        """The account's lead pipelines, each with its statuses in `_embedded.statuses`, as
        AmoCRM's raw JSON objects (AmoCRM lists them all on one page)."""
        return _embedded(self._get(self._url(PIPELINES_PATH), None), "pipelines", PIPELINES_PATH)

    def list_lead_custom_fields(self) -> list[dict[str, Any]]:
        """Every custom field of leads, page by page (50 a page, AmoCRM's most)."""
        params = [("limit", str(CUSTOM_FIELDS_PAGE_SIZE))]
        return list(self._pages(CUSTOM_FIELDS_PATH, "custom_fields", params))

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> AmoCrmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _leads_pages(self, params: list[tuple[str, str]]) -> Iterator[dict[str, Any]]:
        return self._pages(LEADS_PATH, "leads", params)

    def _pages(
        self, path: str, key: str, params: list[tuple[str, str]]
    ) -> Iterator[dict[str, Any]]:
        """The items of `_embedded.<key>` of every page of `path`, following `_links.next`."""
        url: str | None = self._url(path)
        page_params: list[tuple[str, str]] | None = params
        seen: set[str] = set()
        while url is not None:
            seen.add(url)
            body = self._get(url, page_params)
            yield from _embedded(body, key, path)
            # The next link carries every query parameter itself (httpx would replace them).
            page_params = None
            url = self._next_url(body, seen)

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One paced POST of JSON (a 401 renews an OAuth token once); the JSON answered."""
        url = self._url(path)
        token = self._source.current() if self._source else self._token
        for renewed in (False, True):
            self._token = token
            self._refuse_while_blocked(path, "POST")
            self._pacer.wait_turn()
            try:
                response = self._http.post(
                    url, json=payload, headers={"Authorization": f"Bearer {token}"}
                )
            except httpx.TransportError as exc:
                raise AmoCrmError(self._redact(
                    f"cannot reach AmoCRM for POST {path} ({type(exc).__name__}: {exc}); "
                    "try again later"
                )) from None
            if response.status_code != 401 or self._source is None or renewed:
                break
            response.close()
            token = self._source.after_unauthorized(token)
        status = response.status_code
        if 200 <= status < 300:
            return self._json(response, path)
        if status in (401, 403):
            raise AmoCrmAuthError(self._auth_problem(response, path))
        raise AmoCrmError(
            f"AmoCRM refused POST {path} ({status} {self._problem(response)}); check the "
            "integration's rights and what was sent"
        )

    def _next_url(self, body: dict[str, Any] | None, seen: set[str]) -> str | None:
        links = (body or {}).get("_links")
        next_link = links.get("next") if isinstance(links, dict) else None
        href = next_link.get("href") if isinstance(next_link, dict) else None
        if not href:
            return None
        link = urlsplit(str(href))
        if link.hostname and link.hostname.lower() not in self._link_hosts:
            raise AmoCrmError(
                f"AmoCRM's next-page link points at {link.hostname}, not at this account "
                f"({', '.join(sorted(self._link_hosts))}); refusing to follow it. Check that "
                "the AmoCRM base URL is the account's own domain"
            )
        # Sent to the configured base, whatever scheme or port the link names.
        url = urlunsplit((self._scheme, self._netloc, link.path, link.query, ""))
        if url in seen:
            raise AmoCrmError(f"AmoCRM's pagination of {link.path} loops back to a page it gave")
        return url

    def _url(self, path: str) -> str:
        return urlunsplit((self._scheme, self._netloc, path, "", ""))

    def _get(self, url: str, params: list[tuple[str, str]] | None) -> dict[str, Any] | None:
        """One GET with retries: the JSON object answered, or None for 204 No Content."""
        path = urlsplit(url).path
        problem, throttled = "", False
        for attempt in range(self._retries.tries):
            # Every attempt: another thread may have met the block meanwhile.
            self._refuse_while_blocked(path)
            if attempt:
                delay = self._retries.delay_s(attempt)
                log.warning(
                    "AmoCRM GET %s: %s; retry %d/%d in %.1f s",
                    path,
                    problem,
                    attempt,
                    self._retries.tries - 1,
                    delay,
                )
                if throttled:
                    self._pacer.hold(delay)  # AmoCRM counts per integration: pause every thread
                else:
                    self._sleep(delay)
            try:
                response = self._send(url, params)
            except httpx.TransportError as exc:
                problem = self._redact(f"cannot reach AmoCRM ({type(exc).__name__}: {exc})")
                throttled = False
                continue
            status = response.status_code
            throttled = status == 429
            if throttled:
                with self._state:
                    self._last_429_at = self._clock()
            if status == 204:
                return None
            if 200 <= status < 300:
                return self._json(response, path)
            if status == 403 and self._after_429():
                raise self._blocked(response, path)
            if status in (401, 403):
                raise AmoCrmAuthError(self._auth_problem(response, path))
            if 300 <= status < 400:
                target = urlsplit(response.headers.get("Location", "")).hostname or "elsewhere"
                raise AmoCrmError(
                    f"AmoCRM redirected GET {path} ({status}) to {target}: set the AmoCRM base "
                    "URL to the account's own domain, e.g. https://<subdomain>.amocrm.ru"
                )
            if status == 429 or status >= 500:
                problem = f"{status} {self._problem(response)}"
                continue
            raise AmoCrmError(
                f"AmoCRM refused GET {path} ({status} {self._problem(response)}); the request "
                "will fail the same way if repeated: check the ids and filters sent"
            )
        raise AmoCrmError(
            f"AmoCRM GET {path} failed {self._retries.tries} times, last with {problem}; "
            "AmoCRM may be down or rate-limiting: try again later"
        )

    def _after_429(self) -> bool:
        with self._state:
            return self._clock() - self._last_429_at <= BLOCK_AFTER_429_S

    def _blocked(self, response: httpx.Response, path: str) -> AmoCrmBlocked:
        """AmoCRM answered 403 after 429s: no call for the pause, the metric says so."""
        with self._state:
            self._blocked_until = self._clock() + self._block_pause_s
            self._last_429_at = -math.inf
        BLOCKED.set(1)
        message = (
            f"AmoCRM blocked the integration: GET {path} answered 403 "
            f"({self._problem(response)}) after 429s (too many requests); no AmoCRM API "
            f"call for {self._block_pause_s:.0f} s (AMOCRM_BLOCK_PAUSE_S), then calls resume"
        )
        log.error("%s", message)
        if self._on_blocked is not None:
            try:
                self._on_blocked(self._block_pause_s)
            except Exception:  # recording the block must not hide it
                log.exception("the AmoCRM block could not be recorded")
        return AmoCrmBlocked(message, self._block_pause_s)

    def _refuse_while_blocked(self, path: str, method: str = "GET") -> None:
        left = self.blocked_for_s()
        if left > 0:
            raise AmoCrmBlocked(
                f"AmoCRM blocks the integration (403 after 429s): {method} {path} not sent; "
                f"calls resume in {math.ceil(left)} s",
                left,
            )

    def _send(self, url: str, params: list[tuple[str, str]] | None) -> httpx.Response:
        """One paced GET with the current token; with a token source, a 401 renews the
        token and the request is sent once more (a refresh is not a failure to back off)."""
        token = self._source.current() if self._source else self._token
        for renewed in (False, True):
            self._token = token  # the one _redact hides
            self._pacer.wait_turn()
            response = self._http.get(
                url,
                params=tuple(params) if params else None,
                headers={"Authorization": f"Bearer {token}"},
            )
            if response.status_code != 401 or self._source is None or renewed:
                break
            response.close()
            token = self._source.after_unauthorized(token)
        return response

    def _json(self, response: httpx.Response, path: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise AmoCrmError(
                f"AmoCRM answered GET {path} with {response.status_code} but not a JSON object "
                f"(Content-Type {response.headers.get('Content-Type', 'none')!r}); check that "
                "the base URL is the AmoCRM account, not a proxy or login page"
            )
        return body

    def _auth_problem(self, response: httpx.Response, path: str) -> str:
        status, problem = response.status_code, self._problem(response)
        if status == 401 and self._source is not None:
            return (
                f"AmoCRM rejected the access token for GET {path} (401 {problem}) even after "
                "renewing it: reconnect AmoCRM from the admin"
            )
        if status == 401:
            return (
                f"AmoCRM rejected the access token for GET {path} (401 {problem}): the token is "
                "invalid or expired; renew AMOCRM_ACCESS_TOKEN"
            )
        return (
            f"AmoCRM forbids GET {path} (403 {problem}): the token lacks rights on this "
            "account, or AmoCRM blocked this IP after too many requests; check the "
            "integration's access and wait before trying again"
        )

    def _problem(self, response: httpx.Response) -> str:
        """The problem+json title, detail and validation errors, in one line."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return response.reason_phrase or "no details"
        parts = [str(part) for part in (body.get("title"), body.get("detail")) if part]
        if len(parts) == 2 and parts[0] == parts[1]:  # AmoCRM's 401: "Unauthorized" twice
            parts.pop()
        text = ": ".join(parts)
        errors = []
        for item in body.get("validation-errors") or []:
            for error in (item.get("errors") or []) if isinstance(item, dict) else []:
                if isinstance(error, dict):
                    errors.append(
                        f"{error.get('path', '?')}: {error.get('detail', '')} "
                        f"({error.get('code', '')})"
                    )
        if errors:
            text += "; " + "; ".join(errors)
        text = text or response.reason_phrase or "no details"
        return self._redact(text if len(text) <= 500 else text[:497] + "...")

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "<redacted>") if self._token else text


def deal_from_api_lead(lead: dict[str, Any], account_subdomain: str) -> deal_pb2.Deal:
    """Map one API v4 lead object to a Deal proto (event "api").

    Follows the webhook mapping (edge.amocrm_form.deal_from_event): missing numbers are 0,
    `custom_fields_values: null` means no custom fields, text is HTML-unescaped once, and
    non-text values become strings (dates as unix seconds, checkboxes as "1"/"0").
    Raises AmoCrmError naming the lead and field when the object is not a lead.
    """
    if not isinstance(lead, dict):
        raise AmoCrmError(f"AmoCRM lead is not a JSON object: {show(lead)}")
    lead_id = _int(lead.get("id"), "lead id")
    if lead_id <= 0:
        raise AmoCrmError(f"AmoCRM lead has no positive id: {show(lead.get('id'))}")
    where = f"lead {lead_id}"

    def number(name: str) -> int:
        return _int(lead.get(name), f"{where} {name}")

    embedded = lead.get("_embedded")
    deal = deal_pb2.Deal(
        lead_id=lead_id,
        name=_text(lead.get("name"), f"{where} name"),
        status_id=number("status_id"),
        pipeline_id=number("pipeline_id"),
        price=number("price"),
        account_id=number("account_id"),
        account_subdomain=account_subdomain,
        responsible_user_id=number("responsible_user_id"),
        custom_fields=_custom_fields(lead.get("custom_fields_values"), where),
        tags=_tags(embedded.get("tags") if isinstance(embedded, dict) else None, where),
        event="api",
    )
    _set_time(deal.created_at, lead.get("created_at"), f"{where} created_at")
    _set_time(deal.updated_at, lead.get("updated_at"), f"{where} updated_at")
    return deal


def status_change(event: Any) -> StatusChange | None:
    """The StatusChange of one `GET /api/v4/events` item; None for another type of event
    or entity. `value_before`/`value_after` are lists of `{"lead_status": {"id",
    "pipeline_id"}}`; an empty one is None. Raises AmoCrmError for a malformed event."""
    if not isinstance(event, dict):
        raise AmoCrmError(f"AmoCRM event is not a JSON object: {show(event)}")
    if event.get("type") != STATUS_CHANGED or event.get("entity_type") not in ("lead", None):
        return None
    event_id = event.get("id")
    if not isinstance(event_id, str | int) or isinstance(event_id, bool) or not str(event_id):
        raise AmoCrmError(f"AmoCRM event has no id: {show(event_id)}")
    where = f"event {event_id}"
    lead_id = _int(event.get("entity_id"), f"{where} entity_id")
    if lead_id <= 0:
        raise AmoCrmError(f"AmoCRM {where} names no lead: {show(event.get('entity_id'))}")
    return StatusChange(
        event_id=str(event_id),
        lead_id=lead_id,
        created_at=_int(event.get("created_at"), f"{where} created_at"),
        account_id=_int(event.get("account_id"), f"{where} account_id"),
        before=_lead_status(event.get("value_before"), f"{where} value_before"),
        after=_lead_status(event.get("value_after"), f"{where} value_after"),
    )


def _lead_status(raw: Any, field: str) -> tuple[int, int] | None:
    if raw is None or raw == []:
        return None
    if not isinstance(raw, list):
        raise AmoCrmError(f"AmoCRM {field} is not a list: {show(raw)}")
    for item in raw:
        status = item.get("lead_status") if isinstance(item, dict) else None
        if isinstance(status, dict):
            return (
                _int(status.get("pipeline_id"), f"{field} pipeline_id"),
                _int(status.get("id"), f"{field} id"),
            )
    raise AmoCrmError(f"AmoCRM {field} carries no lead_status: {show(raw)}")


def _embedded(body: dict[str, Any] | None, key: str, path: str) -> list[dict[str, Any]]:
    if body is None:
        return []
    items = (body.get("_embedded") or {}).get(key)
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise AmoCrmError(f"AmoCRM answered GET {path} without a list in _embedded.{key}")
    return items


def _positive_id(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        raise ValueError(f"AmoCRM ids are positive integers; got {show(raw)}")
    return raw


def _int(raw: Any, field: str) -> int:
    """A non-negative int64 from a JSON number (or digit string); null is 0."""
    try:
        return amocrm_values.integer(raw)
    except BadValue as exc:
        raise AmoCrmError(f"AmoCRM {field}: {exc}") from None


def _text(raw: Any, field: str) -> str:
    if raw is not None and not isinstance(raw, str):
        raise AmoCrmError(f"AmoCRM {field}: expected text, got {show(raw)}")
    return amocrm_values.text(raw)


def _value_text(raw: Any) -> str:
    """A custom field value as the webhook would carry it."""
    if raw is None:
        return ""
    if isinstance(raw, str):
        return _text(raw, "custom field value")
    if isinstance(raw, bool):  # checkboxes: webhooks send "1"
        return "1" if raw else "0"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    if isinstance(raw, int | float):
        return str(raw)
    # Structured values (linked entities, legal entities) are kept whole as JSON.
    return json.dumps(raw, ensure_ascii=False, sort_keys=True)


def _custom_fields(raw: Any, where: str) -> list[deal_pb2.CustomField]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise AmoCrmError(f"AmoCRM {where} custom_fields_values is not a list: {show(raw)}")
    fields = []
    for k, item in enumerate(raw):
        field = f"{where} custom_fields_values[{k}]"
        if not isinstance(item, dict):
            raise AmoCrmError(f"AmoCRM {field} is not a custom field: {show(item)}")
        values = item.get("values") or []
        if not isinstance(values, list):
            values = [values]
        fields.append(
            deal_pb2.CustomField(
                id=_int(item.get("field_id"), f"{field}.field_id"),
                name=_text(item.get("field_name"), f"{field}.field_name"),
                code=_text(item.get("field_code"), f"{field}.field_code"),
                values=[
                    _custom_value(value, f"{field}.values[{m}]") for m, value in enumerate(values)
                ],
            )
        )
    return fields


def _custom_value(raw: Any, field: str) -> deal_pb2.CustomFieldValue:
    if not isinstance(raw, dict):
        return deal_pb2.CustomFieldValue(value=_value_text(raw))
    return deal_pb2.CustomFieldValue(
        value=_value_text(raw.get("value")),
        enum_id=_int(raw.get("enum_id"), f"{field}.enum_id"),
    )


def _tags(raw: Any, where: str) -> list[deal_pb2.Tag]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise AmoCrmError(f"AmoCRM {where} _embedded.tags is not a list: {show(raw)}")
    tags = []
    for k, item in enumerate(raw):
        field = f"{where} _embedded.tags[{k}]"
        if not isinstance(item, dict):
            raise AmoCrmError(f"AmoCRM {field} is not a tag: {show(item)}")
        tags.append(
            deal_pb2.Tag(
                id=_int(item.get("id"), f"{field}.id"),
                name=_text(item.get("name"), f"{field}.name"),
            )
        )
    return tags


def _set_time(target: Timestamp, raw: Any, field: str) -> None:
    try:
        seconds = amocrm_values.unix_seconds(raw)
    except BadValue as exc:
        raise AmoCrmError(f"AmoCRM {field}: {exc}") from None
    if seconds:
        target.FromSeconds(seconds)
