"""A real HTTP server standing in for AmoCRM's REST API v4 in tests.

    with FakeAmoCrm(token="t") as amocrm:        # seeded with the fixture leads
        amocrm.fail_next(429, times=2)           # then answers normally again
        ... AmoCrmClient(amocrm.url, "t", public_host=AMOCRM_HOST) ...
        assert amocrm.max_requests_per_second() < 7

Answers, like AmoCRM:
- GET /api/v4/leads with `filter[id][]`, `filter[statuses][N][pipeline_id|status_id]`,
  `filter[updated_at][from|to]`, `order[updated_at|id]=asc|desc`, `page`, `limit` (<= 250,
  400 above); pages link to each other with absolute URLs on the account's public host
  (`https://onaiagencykz.amocrm.ru/api/v4/leads?...&page=N`), as the fixtures do;
  204 with no body when nothing matches.
- GET /api/v4/leads/{id}: the lead, or 204 when there is none.
- GET /api/v4/webhooks: the configured hooks, or 204. POST /api/v4/webhooks (JSON:
  destination, settings, sort): subscribes the destination, or updates the hook with that
  destination and enables it again; answers the hook.
- GET /api/v4/leads/pipelines: the pipelines, each with `_embedded.statuses` (one page).
- GET /api/v4/leads/custom_fields with `page`, `limit` (<= 50, 400 above): the lead custom
  fields, pages linked by `_links.next`; 204 past the last page.
- GET /api/v4/events with `filter[type]` (comma-separated or `filter[type][]`),
  `filter[entity][]`, `filter[entity_id][]`, `filter[created_at][from|to]`,
  `filter[value_before|value_after][leads_statuses][N][pipeline_id|status_id]`, `page`,
  `limit` (<= 100, 400 above): newest first, linked like the leads pages, 204 when nothing
  matches. A status change of a lead (change_status(), or add_lead() of a new lead or one in
  another status) records a `lead_status_changed` event, as AmoCRM's events log does.
- POST /oauth2/access_token (JSON: client_id, client_secret, redirect_uri, grant_type
  authorization_code with `code`, or refresh_token with `refresh_token`): a new pair
  {token_type, expires_in, access_token, refresh_token}. Codes and refresh tokens work once:
  a second use answers 400 `invalid_grant`. Access tokens expire after `access_ttl_s`.
- 401 with AmoCRM's problem+json body unless `Authorization: Bearer <token>` carries the
  static token or an OAuth access token that has not expired.
Every path answers the failures scripted with fail_next() (429, 403, ...) alike.
Every request is recorded (path, query, headers, status answered, time received).
"""

import copy
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "amocrm"
AMOCRM_HOST = "onaiagencykz.amocrm.ru"
PUBLIC_BASE = f"https://{AMOCRM_HOST}"
MAX_LIMIT = 250
DEFAULT_LIMIT = 50
MAX_EVENTS_LIMIT = 100
# The stage a lead created by add_lead() moves from (a pipeline's first stage).
FIRST_STAGE_ID = 10000001

_LEAD_PATH = re.compile(r"/api/v4/leads/([0-9]+)")
_STATUS_KEY = re.compile(r"filter\[statuses\]\[([0-9]+)\]\[(pipeline_id|status_id)\]")
_ID_KEY = re.compile(r"filter\[id\](?:\[[0-9]*\])?")
_EVENT_STATUS_KEY = re.compile(
    r"filter\[(value_before|value_after)\]\[leads_statuses\]\[([0-9]+)\]"
    r"\[(pipeline_id|status_id)\]"
)

DEFAULT_WEBHOOKS: tuple[dict[str, Any], ...] = (
    {
        "id": 1,
        "destination": "https://amoroute.example/webhook/amocrm/long-random-secret",
        "created_at": 1749000000,
        "updated_at": 1749000000,
        "account_id": 32145678,
        "created_by": 11223344,
        "sort": 1,
        "disabled": False,
        "settings": ["status_lead", "add_lead", "update_lead"],
    },
    {
        "id": 2,
        "destination": "https://old.example/amocrm-hook",
        "created_at": 1740000000,
        "updated_at": 1748000000,
        "account_id": 32145678,
        "created_by": 11223344,
        "sort": 2,
        "disabled": True,
        "settings": ["status_lead"],
    },
)


DEFAULT_PIPELINES: tuple[dict[str, Any], ...] = (
    {
        "id": 10418746, "name": "Продажи", "sort": 1, "is_main": True, "is_unsorted_on": True,
        "is_archive": False, "account_id": 32145678,
        "_embedded": {"statuses": [
            {"id": 81620102, "name": "Неразобранное", "sort": 10, "is_editable": False,
             "pipeline_id": 10418746, "color": "#c1c1c1", "type": 1, "account_id": 32145678},
            {"id": 81620106, "name": "Первичный контакт", "sort": 20, "is_editable": True,
             "pipeline_id": 10418746, "color": "#99ccff", "type": 0, "account_id": 32145678},
            {"id": 81620110, "name": "Оплата", "sort": 30, "is_editable": True,
             "pipeline_id": 10418746, "color": "#fffeb2", "type": 0, "account_id": 32145678},
            {"id": 142, "name": "Успешно реализовано", "sort": 10000, "is_editable": False,
             "pipeline_id": 10418746, "color": "#CCFF66", "type": 0, "account_id": 32145678},
            {"id": 143, "name": "Закрыто и не реализовано", "sort": 11000, "is_editable": False,
             "pipeline_id": 10418746, "color": "#D5D8DB", "type": 0, "account_id": 32145678},
        ]},
    },
    {
        "id": 10418750, "name": "Партнёры", "sort": 2, "is_main": False, "is_unsorted_on": False,
        "is_archive": False, "account_id": 32145678,
        "_embedded": {"statuses": [
            {"id": 81620120, "name": "Заявка", "sort": 10, "is_editable": True,
             "pipeline_id": 10418750, "color": "#99ccff", "type": 0, "account_id": 32145678},
            {"id": 142, "name": "Успешно реализовано", "sort": 10000, "is_editable": False,
             "pipeline_id": 10418750, "color": "#CCFF66", "type": 0, "account_id": 32145678},
            {"id": 143, "name": "Закрыто и не реализовано", "sort": 11000, "is_editable": False,
             "pipeline_id": 10418750, "color": "#D5D8DB", "type": 0, "account_id": 32145678},
        ]},
    },
)
CUSTOM_FIELDS_MAX_LIMIT = 50


def fixture_custom_fields() -> list[dict[str, Any]]:
    """The lead custom fields the fixture leads fill, as GET /api/v4/leads/custom_fields
    lists them (select and multiselect fields with the enums the leads use)."""
    fields: dict[int, dict[str, Any]] = {}
    for lead in fixture_leads():
        for value in lead.get("custom_fields_values") or []:
            field = fields.setdefault(value["field_id"], {
                "id": value["field_id"], "name": value["field_name"], "type": value["field_type"],
                "account_id": 32145678, "code": value.get("field_code"), "sort": 500 + len(fields),
                "is_api_only": False, "enums": None, "group_id": None, "required_statuses": [],
                "is_deletable": value["field_type"] != "tracking_data", "is_predefined": False,
                "entity_type": "leads", "remind": None, "settings": None,
            })
            for item in value.get("values") or []:
                if item.get("enum_id"):
                    enums = field["enums"] = field["enums"] or []
                    if all(e["id"] != item["enum_id"] for e in enums):
                        enums.append({"id": item["enum_id"], "value": item["value"],
                                      "sort": len(enums) + 1})
    return sorted(fields.values(), key=lambda field: field["sort"])


def fixture_json(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def fixture_leads() -> list[dict[str, Any]]:
    """Every distinct lead of lead_v4.json and the two list pages, by id."""
    leads = {lead["id"]: lead for lead in [fixture_json("lead_v4.json")]}
    for page in ("leads_list_v4_page1.json", "leads_list_v4_page2.json"):
        for lead in fixture_json(page)["_embedded"]["leads"]:
            leads.setdefault(lead["id"], lead)
    return list(leads.values())


def problem(status: int, title: str, detail: str) -> dict[str, Any]:
    """An AmoCRM problem+json body."""
    return {"title": title, "type": f"https://httpstatus.es/{status}", "status": status,
            "detail": detail}


_PROBLEMS: dict[int, Callable[[], dict[str, Any]]] = {
    400: lambda: fixture_json("error_400_validation.json"),
    401: lambda: fixture_json("error_401.json"),
    403: lambda: problem(403, "Forbidden", "Access denied"),
    404: lambda: problem(404, "Not Found", "Not Found"),
    429: lambda: problem(429, "Too Many Requests", "Too Many Requests"),
}


@dataclass(frozen=True)
class Reply:
    status: int  # 0: drop the connection without answering
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: list[tuple[str, str]]  # decoded pairs, in order
    headers: dict[str, str]
    status: int  # what the fake answered; 0 when it dropped the connection
    at: float  # the fake's clock when the request arrived

    def values(self, key: str) -> list[str]:
        return [value for name, value in self.query if name == key]


class FakeAmoCrm:
    """AmoCRM API v4 on 127.0.0.1 (any free port). `leads` defaults to the fixture leads;
    `public_base` is the origin written into `_links` hrefs; `clock` stamps requests."""

    def __init__(
        self,
        token: str = "test-amocrm-token",
        *,
        leads: Iterable[dict[str, Any]] | None = None,
        webhooks: Iterable[dict[str, Any]] = DEFAULT_WEBHOOKS,
        pipelines: Iterable[dict[str, Any]] = DEFAULT_PIPELINES,
        custom_fields: Iterable[dict[str, Any]] | None = None,
        public_base: str = PUBLIC_BASE,
        clock: Callable[[], float] = time.monotonic,
        client_id: str = "amoroute-integration",
        client_secret: str = "integration-Secret-5e6f7a8b",
        redirect_uri: str = "https://amoroute.example/oauth/amocrm/callback",
        access_ttl_s: int = 86400,
    ) -> None:
        self.token = token
        self.client_id, self.client_secret, self.redirect_uri = (
            client_id, client_secret, redirect_uri
        )
        self.access_ttl_s = access_ttl_s
        # Seconds the token endpoint takes to answer: widens the window of a refresh race.
        self.grant_delay_s = 0.0
        self._access: dict[str, float] = {}  # OAuth access token -> expiry on `clock`
        self._refresh: set[str] = set()  # refresh tokens not used yet
        self._codes: set[str] = set()
        # (grant_type, status answered) of every token request, oldest first.
        self.grants: list[tuple[str, int]] = []
        self.public_base = public_base.rstrip("/")
        self._clock = clock
        self._lock = threading.Lock()
        self._leads: dict[int, dict[str, Any]] = {}
        self._events: list[dict[str, Any]] = []
        self._webhooks = [copy.deepcopy(hook) for hook in webhooks]
        self._pipelines = [copy.deepcopy(pipeline) for pipeline in pipelines]
        self._custom_fields = [
            copy.deepcopy(field)
            for field in (fixture_custom_fields() if custom_fields is None else custom_fields)
        ]
        self._script: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self.set_leads(fixture_leads() if leads is None else leads)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        # Keep-alive connections must not hold up shutdown.
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-amocrm", daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL for AmoCrmClient."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def set_leads(self, leads: Iterable[dict[str, Any]]) -> None:
        """Replace every lead."""
        with self._lock:
            self._leads = {int(lead["id"]): copy.deepcopy(lead) for lead in leads}

    def add_lead(self, lead: dict[str, Any], *, status_event: bool = True) -> None:
        """Add a lead, or replace the one with its id. A new lead, or one now in another
        status, gets a `lead_status_changed` event at its updated_at (unless not
        `status_event`); a new one moves from its pipeline's FIRST_STAGE_ID."""
        with self._lock:
            old = self._leads.get(int(lead["id"]))
            self._leads[int(lead["id"])] = copy.deepcopy(lead)
        before = (
            (old.get("pipeline_id"), old.get("status_id"))
            if old
            else (lead.get("pipeline_id"), FIRST_STAGE_ID)
        )
        after = (lead.get("pipeline_id"), lead.get("status_id"))
        if status_event and before != after:
            self.add_status_event(
                int(lead["id"]), before, after, lead.get("updated_at") or int(time.time()),
                account_id=lead.get("account_id") or 0,
            )

    def change_status(
        self, lead_id: int, pipeline_id: int, status_id: int, at: int, *, event: bool = True
    ) -> dict[str, Any]:
        """Move a lead to another status at `at` (unix seconds) and record the event (unless
        not `event`: a change the events log lacks); returns the event or {}."""
        with self._lock:
            lead = self._leads[lead_id]
            before = (lead.get("pipeline_id"), lead.get("status_id"))
            lead.update(pipeline_id=pipeline_id, status_id=status_id, updated_at=at)
            account_id = lead.get("account_id") or 0
        if not event:
            return {}
        return self.add_status_event(
            lead_id, before, (pipeline_id, status_id), at, account_id=account_id
        )

    def add_status_event(
        self,
        lead_id: int,
        before: tuple[Any, Any] | None,
        after: tuple[Any, Any] | None,
        created_at: int,
        *,
        account_id: int = 0,
    ) -> dict[str, Any]:
        """Record a `lead_status_changed` event as AmoCRM lists it; returns it."""
        def value(pair: tuple[Any, Any] | None) -> list[dict[str, Any]]:
            return [{"lead_status": {"id": pair[1], "pipeline_id": pair[0]}}] if pair else []

        event_id = secrets.token_hex(13)
        event = {
            "id": event_id,
            "type": "lead_status_changed",
            "entity_id": lead_id,
            "entity_type": "lead",
            "created_by": 0,
            "created_at": int(created_at),
            "value_after": value(after),
            "value_before": value(before),
            "account_id": account_id,
            "_links": {"self": {"href": f"{self.public_base}/api/v4/events/{event_id}"}},
            "_embedded": {"entity": {"id": lead_id}},
        }
        with self._lock:
            self._events.append(event)
        return copy.deepcopy(event)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event recorded, oldest first."""
        with self._lock:
            return copy.deepcopy(self._events)

    def set_webhooks(self, webhooks: Iterable[dict[str, Any]]) -> None:
        with self._lock:
            self._webhooks = [copy.deepcopy(hook) for hook in webhooks]

    @property
    def webhooks(self) -> list[dict[str, Any]]:
        """The hooks registered now."""
        with self._lock:
            return copy.deepcopy(self._webhooks)

    def disable_webhooks(self, destination_part: str = "/webhook/amocrm") -> None:
        """Disable every hook whose destination contains `destination_part`, as AmoCRM does
        after too many invalid answers."""
        with self._lock:
            for hook in self._webhooks:
                if destination_part in hook["destination"]:
                    hook["disabled"] = True

    def fail_next(self, status: int, times: int = 1) -> None:
        """Answer the next `times` requests with `status` and AmoCRM's problem+json body
        (the fixtures' for 400 and 401), whatever they ask; then answer normally again."""
        phrase = HTTPStatus(status).phrase
        body = _PROBLEMS.get(status, lambda: problem(status, phrase, phrase))()
        with self._lock:
            self._script.extend([Reply(status, body)] * times)

    def issue_code(self) -> str:
        """An authorisation code, as AmoCRM hands it to the redirect URI."""
        code = "code-" + secrets.token_urlsafe(16)
        with self._lock:
            self._codes.add(code)
        return code

    def issue_refresh_token(self) -> str:
        """A refresh token, as an integration's settings show it (for AMOCRM_REFRESH_TOKEN)."""
        token = "refresh-" + secrets.token_urlsafe(24)
        with self._lock:
            self._refresh.add(token)
        return token

    def expire_access_tokens(self) -> None:
        """Every OAuth access token issued so far is answered 401 from now on."""
        with self._lock:
            self._access.clear()

    def revoke_refresh_tokens(self) -> None:
        """Every unused refresh token now answers invalid_grant (a revoked integration)."""
        with self._lock:
            self._refresh.clear()

    @property
    def access_tokens(self) -> list[str]:
        """OAuth access tokens still valid, oldest first."""
        with self._lock:
            return list(self._access)

    def drop_next(self, times: int = 1) -> None:
        """Close the connection of the next `times` requests without answering."""
        with self._lock:
            self._script.extend([Reply(0)] * times)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def max_requests_per_second(self, window_s: float = 1.0) -> int:
        """The most requests that arrived within any `window_s` (half-open) window."""
        times = sorted(request.at for request in self.requests)
        most, first = 0, 0
        for last, at in enumerate(times):
            while at - times[first] >= window_s:
                first += 1
            most = max(most, last - first + 1)
        return most

    def __enter__(self) -> "FakeAmoCrm":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    # --- answering ---------------------------------------------------------------------------

    def _answer(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> Reply:
        at = self._clock()
        parts = urlsplit(target)
        query = parse_qsl(parts.query, keep_blank_values=True)
        with self._lock:
            if parts.path == "/oauth2/access_token" and method == "POST":
                reply = self._script.popleft() if self._script else self._grant(body, at)
            elif not self._authorized(headers.get("authorization", ""), at):
                reply = Reply(401, _PROBLEMS[401]())
            elif self._script:
                reply = self._script.popleft()
            elif method == "POST" and parts.path == "/api/v4/webhooks":
                reply = self._subscribe(body)
            elif method != "GET":
                reply = Reply(405, problem(405, "Method Not Allowed", f"{method} is not served"))
            else:
                reply = self._route(parts.path, query)
            self._requests.append(
                RecordedRequest(method, parts.path, query, headers, reply.status, at)
            )
        return reply

    def _authorized(self, header: str, at: float) -> bool:
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token:
            return False
        return token == self.token or self._access.get(token, -1.0) > at

    def _grant(self, raw: bytes, at: float) -> Reply:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return Reply(400, problem(400, "Bad Request", "the body is not JSON"))
        grant = str(body.get("grant_type", ""))
        reply = self._grant_reply(body, grant, at)
        self.grants.append((grant, reply.status))
        return reply

    def _grant_reply(self, body: dict[str, Any], grant: str, at: float) -> Reply:
        if (body.get("client_id"), body.get("client_secret"), body.get("redirect_uri")) != (
            self.client_id, self.client_secret, self.redirect_uri
        ):
            return Reply(401, {"error": "invalid_client", **problem(
                401, "Unauthorized", "Client authentication failed")})
        if grant == "authorization_code":
            spent = body.get("code") not in self._codes
            self._codes.discard(body.get("code"))
        elif grant == "refresh_token":
            spent = body.get("refresh_token") not in self._refresh
            self._refresh.discard(body.get("refresh_token"))
        else:
            return Reply(400, {"error": "unsupported_grant_type", **problem(
                400, "Bad Request", "grant_type")})
        if spent:
            return Reply(400, {"error": "invalid_grant", "hint": "Token has been revoked",
                               **problem(400, "Bad Request", "invalid_grant")})
        access, refresh = "access-" + secrets.token_urlsafe(24), "refresh-" + secrets.token_urlsafe(24)
        self._access[access] = at + self.access_ttl_s
        self._refresh.add(refresh)
        return Reply(200, {"token_type": "Bearer", "expires_in": self.access_ttl_s,
                           "access_token": access, "refresh_token": refresh})

    def _subscribe(self, raw: bytes) -> Reply:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        destination = body.get("destination") if isinstance(body, dict) else None
        settings = body.get("settings") if isinstance(body, dict) else None
        if not isinstance(destination, str) or not destination.startswith("https://") or not (
            isinstance(settings, list) and settings and all(isinstance(s, str) for s in settings)
        ):
            return Reply(400, fixture_json("error_400_validation.json"))
        stamp = int(time.time())
        hook = next((h for h in self._webhooks if h["destination"] == destination), None)
        if hook is None:
            hook = {"id": max((h["id"] for h in self._webhooks), default=0) + 1,
                    "destination": destination, "created_at": stamp, "account_id": 32145678,
                    "created_by": 11223344}
            self._webhooks.append(hook)
        hook.update(updated_at=stamp, sort=body.get("sort", 10), disabled=False,
                    settings=list(settings))
        return Reply(200, copy.deepcopy(hook))

    def _route(self, path: str, query: list[tuple[str, str]]) -> Reply:
        if path == "/api/v4/leads":
            return self._list_leads(query)
        if path == "/api/v4/leads/pipelines":
            return Reply(200, {
                "_total_items": len(self._pipelines),
                "_links": {"self": {"href": f"{self.public_base}{path}"}},
                "_embedded": {"pipelines": copy.deepcopy(self._pipelines)},
            })
        if path == "/api/v4/leads/custom_fields":
            return self._list_custom_fields(path, query)
        if path == "/api/v4/events":
            return self._list_events(query)
        if match := _LEAD_PATH.fullmatch(path):
            lead = self._leads.get(int(match[1]))
            return Reply(200, copy.deepcopy(lead)) if lead else Reply(204)
        if path == "/api/v4/webhooks":
            if not self._webhooks:
                return Reply(204)
            return Reply(200, {"_total_items": len(self._webhooks),
                               "_embedded": {"webhooks": copy.deepcopy(self._webhooks)}})
        return Reply(404, _PROBLEMS[404]())

    def _list_leads(self, query: list[tuple[str, str]]) -> Reply:
        try:
            limit = int(_last(query, "limit") or DEFAULT_LIMIT)
            page = int(_last(query, "page") or 1)
            leads = self._matching(query)
        except ValueError as exc:
            return Reply(400, problem(400, "Bad Request", str(exc)))
        if not 1 <= limit <= MAX_LIMIT or page < 1:
            return Reply(400, fixture_json("error_400_validation.json"))
        chunk = leads[(page - 1) * limit : page * limit]
        if not chunk:
            return Reply(204)
        base = [(key, value) for key, value in query if key != "page"]
        links = {"self": {"href": self._href(base, page)}}
        if page > 1:
            links["first"] = {"href": self._href(base, 1)}
            links["prev"] = {"href": self._href(base, page - 1)}
        if page * limit < len(leads):
            links["next"] = {"href": self._href(base, page + 1)}
        return Reply(200, {"_page": page, "_links": links,
                           "_embedded": {"leads": copy.deepcopy(chunk)}})

    def _list_custom_fields(self, path: str, query: list[tuple[str, str]]) -> Reply:
        try:
            limit = int(_last(query, "limit") or CUSTOM_FIELDS_MAX_LIMIT)
            page = int(_last(query, "page") or 1)
        except ValueError as exc:
            return Reply(400, problem(400, "Bad Request", str(exc)))
        if not 1 <= limit <= CUSTOM_FIELDS_MAX_LIMIT or page < 1:
            return Reply(400, fixture_json("error_400_validation.json"))
        chunk = self._custom_fields[(page - 1) * limit : page * limit]
        if not chunk:
            return Reply(204)
        base = [(key, value) for key, value in query if key != "page"]

        def href(number: int) -> str:
            return f"{self.public_base}{path}?{urlencode([*base, ('page', str(number))])}"

        links = {"self": {"href": href(page)}}
        if page * limit < len(self._custom_fields):
            links["next"] = {"href": href(page + 1)}
        return Reply(200, {"_total_items": len(chunk), "_page": page, "_links": links,
                           "_embedded": {"custom_fields": copy.deepcopy(chunk)}})

    def _list_events(self, query: list[tuple[str, str]]) -> Reply:
        try:
            limit = int(_last(query, "limit") or DEFAULT_LIMIT)
            page = int(_last(query, "page") or 1)
            events = self._matching_events(query)
        except ValueError as exc:
            return Reply(400, problem(400, "Bad Request", str(exc)))
        if not 1 <= limit <= MAX_EVENTS_LIMIT or page < 1:
            return Reply(400, fixture_json("error_400_validation.json"))
        chunk = events[(page - 1) * limit : page * limit]
        if not chunk:
            return Reply(204)
        base = [(key, value) for key, value in query if key != "page"]
        links = {"self": {"href": self._href(base, page, "events")}}
        if page * limit < len(events):
            links["next"] = {"href": self._href(base, page + 1, "events")}
        return Reply(200, {"_page": page, "_links": links,
                           "_embedded": {"events": copy.deepcopy(chunk)}})

    def _matching_events(self, query: list[tuple[str, str]]) -> list[dict[str, Any]]:
        types = {t for key, value in query if key in ("filter[type]", "filter[type][]")
                 for t in value.split(",") if t}
        entities = {value for key, value in query if key in ("filter[entity]", "filter[entity][]")}
        entity_ids = {int(value) for key, value in query if key == "filter[entity_id][]"}
        sides: dict[str, dict[str, dict[str, int]]] = {}
        for key, value in query:
            if match := _EVENT_STATUS_KEY.fullmatch(key):
                sides.setdefault(match[1], {}).setdefault(match[2], {})[match[3]] = int(value)
        pairs = {side: {(s.get("pipeline_id"), s.get("status_id")) for s in items.values()}
                 for side, items in sides.items()}
        created_from = _last(query, "filter[created_at][from]")
        created_to = _last(query, "filter[created_at][to]")

        def status_of(values: list[dict[str, Any]]) -> tuple[Any, Any] | None:
            for item in values:
                status = item.get("lead_status")
                if status:
                    return (status.get("pipeline_id"), status.get("id"))
            return None

        events = [
            event
            for event in self._events
            if (not types or event["type"] in types)
            and (not entities or event["entity_type"] in entities)
            and (not entity_ids or event["entity_id"] in entity_ids)
            and (created_from is None or event["created_at"] >= int(created_from))
            and (created_to is None or event["created_at"] <= int(created_to))
            and all(status_of(event[side]) in wanted for side, wanted in pairs.items())
        ]
        # Newest first, as AmoCRM lists its events log.
        return sorted(events, key=lambda event: event["created_at"], reverse=True)

    def _matching(self, query: list[tuple[str, str]]) -> list[dict[str, Any]]:
        ids = {int(value) for key, value in query if _ID_KEY.fullmatch(key)}
        statuses: dict[str, dict[str, int]] = {}
        for key, value in query:
            if match := _STATUS_KEY.fullmatch(key):
                statuses.setdefault(match[1], {})[match[2]] = int(value)
        pairs = {(s.get("pipeline_id"), s.get("status_id")) for s in statuses.values()}
        updated_from = _last(query, "filter[updated_at][from]")
        updated_to = _last(query, "filter[updated_at][to]")
        leads = [
            lead
            for lead in self._leads.values()
            if (not ids or lead["id"] in ids)
            and (not pairs or (lead.get("pipeline_id"), lead.get("status_id")) in pairs)
            and (updated_from is None or lead.get("updated_at", 0) >= int(updated_from))
            and (updated_to is None or lead.get("updated_at", 0) <= int(updated_to))
        ]
        order_key, direction = "id", "asc"
        for key, value in query:
            if key in ("order[updated_at]", "order[id]"):
                order_key, direction = key[6:-1], value
        leads.sort(key=lambda lead: (lead.get(order_key) or 0, lead["id"]),
                   reverse=direction == "desc")
        return leads

    def _href(self, query: list[tuple[str, str]], page: int, what: str = "leads") -> str:
        return f"{self.public_base}/api/v4/{what}?{urlencode([*query, ('page', str(page))])}"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as httpx uses it
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST", self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _serve(self, method: str, body: bytes = b"") -> None:
                headers = {name.lower(): value for name, value in self.headers.items()}
                if self.path.startswith("/oauth2/"):
                    time.sleep(fake.grant_delay_s)
                reply = fake._answer(method, self.path, headers, body)
                if reply.status == 0:
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                if reply.status == 204:
                    self.end_headers()
                    return
                payload = json.dumps(reply.body, ensure_ascii=False).encode()
                kind = "application/hal+json" if reply.status < 400 else "application/problem+json"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # keep test output clean

        return Handler


def _last(query: list[tuple[str, str]], key: str) -> str | None:
    values = [value for name, value in query if name == key]
    return values[-1] if values else None
