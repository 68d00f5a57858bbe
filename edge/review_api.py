"""The review queue of unknown sales: GET /api/admin/review/unknown, and marking a group "not
attributable" with POST and DELETE /api/admin/review/unknown/dismissals.

Groups come from the edge's own log (edge/review_store.py, edge/review_queue.py); who they
most likely belong to comes from the router (SuggestOwners), against the current rules
(GetRules) and the referral codes referral_svc knows. When either service cannot answer, the
groups still come back, with `suggestions_error` saying why.
"""

import difflib
from dataclasses import dataclass, field
from typing import Any

import falcon
import grpc
import yaml

from amoroute.v1 import deal_pb2, referral_pb2, referral_pb2_grpc, router_pb2, router_pb2_grpc
from edge.admin_json import iso
from edge.admin_params import Params, bad_param, json_body, time_range
from edge.review_queue import Group, merge
from edge.review_store import Dismissal, ReviewStore

# Deadline of each call to the router and referral_svc.
SUGGESTIONS_TIMEOUT_S = 5.0
# Groups listed at most (the most revenue first), and by default.
MAX_GROUPS = 500
DEFAULT_GROUPS = 100
# What SuggestOwners takes (router_svc/service.py): spellings a group, codes a call.
MARKS_PER_GROUP = 20
MAX_KNOWN_CODES = 2000
MAX_KEY = 2000
MAX_REASON = 500
MAX_BODY_BYTES = 16_384
DEFAULT_ADMIN = "admin"
_SOURCES: dict[int, str] = {
    router_pb2.RULES_SOURCE_DATABASE: "database",
    router_pb2.RULES_SOURCE_FILE: "file",
}
_KINDS = {
    router_pb2.SUGGESTION_KIND_TARGETOLOGIST: "targetologist",
    router_pb2.SUGGESTION_KIND_REFERRAL: "referral",
}


class SuggestionsUnavailable(Exception):
    """Why there are no suggestions: a service did not answer or refused."""


@dataclass
class Suggestions:
    """Per group, its suggestions as JSON; the rules they were made against."""

    per_group: list[list[dict[str, Any]]] = field(default_factory=list)
    rules_version: int | None = None
    rules_source: str | None = None
    error: str | None = None


class OwnerSuggester:
    """Asks referral_svc for the known codes, the router for the current rules and then for
    the suggestions, in one call for every group."""

    def __init__(
        self, router: grpc.Channel, router_addr: str, referral: grpc.Channel, referral_addr: str
    ) -> None:
        self.router = router_pb2_grpc.RouterServiceStub(router)
        self.router_addr = router_addr
        self.referral = referral_pb2_grpc.ReferralServiceStub(referral)
        self.referral_addr = referral_addr

    def suggest(self, groups: list[Group]) -> Suggestions:
        if not groups:
            return Suggestions()
        try:
            codes = self._known_codes()
            current = self._current_rules()
            request = router_pb2.SuggestOwnersRequest(
                groups=[_utm_group(g) for g in groups],
                known_referral_codes=codes,
                base_rules_yaml=current.yaml if current else "",
            )
            reply = self._call("router_svc", self.router_addr, self.router.SuggestOwners, request)
        except SuggestionsUnavailable as exc:
            return Suggestions(per_group=[[] for _ in groups], error=str(exc))
        base = _normalised(current.yaml) if current else ""
        version = current.version if current else None
        answer = Suggestions(
            per_group=[
                [_suggestion_json(s, base, version) for s in result.suggestions]
                for result in reply.results
            ],
            rules_version=version,
            rules_source=_SOURCES.get(current.source) if current else None,
        )
        return answer

    def _known_codes(self) -> list[str]:
        reply = self._call(
            "referral_svc",
            self.referral_addr,
            self.referral.GetReferrerStats,
            referral_pb2.GetReferrerStatsRequest(),
        )
        # The stats come biggest amount first: past the bound, the least used codes go.
        return [s.referral_code for s in reply.stats][:MAX_KNOWN_CODES]

    def _current_rules(self) -> "CurrentRules | None":
        """The rules document in force and its version; None from a router that keeps no
        versions (no GetRules), whose suggestions then carry no proposed document."""
        try:
            reply = self.router.GetRules(
                router_pb2.GetRulesRequest(), timeout=SUGGESTIONS_TIMEOUT_S
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None
            raise SuggestionsUnavailable(_failure("router_svc", self.router_addr, exc)) from None
        return CurrentRules(reply.current.yaml, reply.current.version, reply.source)

    def _call(self, service: str, address: str, rpc: Any, request: Any) -> Any:
        try:
            return rpc(request, timeout=SUGGESTIONS_TIMEOUT_S)
        except grpc.RpcError as exc:
            raise SuggestionsUnavailable(_failure(service, address, exc)) from None


@dataclass(frozen=True)
class CurrentRules:
    yaml: str
    version: int
    source: int


def _failure(service: str, address: str, exc: grpc.RpcError) -> str:
    code = exc.code()
    name = code.name if code else "UNKNOWN"
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return f"{service} at {address} did not answer ({name}); reload shortly"
    return f"{service} at {address} failed ({name}): {exc.details()}"


def _utm_group(group: Group) -> router_pb2.UtmGroup:
    return router_pb2.UtmGroup(
        marks=[
            deal_pb2.UtmMarks(source=v.utm_source or "", campaign=v.utm_campaign or "")
            for v in group.variants[:MARKS_PER_GROUP]
        ]
    )


def _normalised(text: str) -> str:
    """A rules document as the proposals are written (yaml.safe_dump), so that a diff
    against a proposal shows the change and not the comments and layout it drops."""
    try:
        return yaml.safe_dump(yaml.safe_load(text), sort_keys=False, allow_unicode=True)
    except yaml.YAMLError:
        return text


def _suggestion_json(
    s: router_pb2.OwnerSuggestion, base: str, version: int | None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": _KINDS.get(s.kind, "unknown"),
        "target": s.target,
        "why": s.why,
        "typos": s.typos,
        "marks_covered": s.marks_covered,
        "changes": [_change_json(c) for c in s.changes],
    }
    if s.proposed_rules_yaml:
        out["proposed_rules_yaml"] = s.proposed_rules_yaml
        out["proposed_diff"] = "".join(
            difflib.unified_diff(
                base.splitlines(keepends=True),
                s.proposed_rules_yaml.splitlines(keepends=True),
                fromfile=f"rules v{version}",
                tofile="proposed",
            )
        )
        out["rules_version"] = version
        # The rules in force already credit these marks (they changed after the sales were
        # logged): the sales need a replay, not a rule change.
        out["already_in_rules"] = not out["proposed_diff"]
    return out


def _change_json(change: router_pb2.RuleChange) -> dict[str, Any]:
    if change.HasField("add_pattern"):
        p = change.add_pattern
        return {"add_pattern": {"targetologist": p.targetologist, "pattern": p.pattern}}
    a = change.add_referral_alias
    return {"add_referral_alias": {"source": a.source, "code": a.code}}


def _dismissal_json(d: Dismissal) -> dict[str, Any]:
    return {"key": d.key, "reason": d.reason, "by": d.dismissed_by, "at": iso(d.dismissed_at)}


def _group_json(
    group: Group, suggestions: list[dict[str, Any]] | None, dismissed: Dismissal | None
) -> dict[str, Any]:
    newest = group.newest
    out: dict[str, Any] = {
        "key": group.key,
        "source": group.source,
        "campaign": group.campaign,
        "variants": [
            {
                "utm_source": v.utm_source,
                "utm_campaign": v.utm_campaign,
                "count": v.count,
                "revenue": v.revenue,
            }
            for v in group.variants
        ],
        "count": group.count,
        "revenue": group.revenue,
        "first_seen": iso(group.first_seen),
        "last_seen": iso(group.last_seen),
        "lead_ids": [lead_id for _, lead_id in newest],
        "log_ids": [log_id for log_id, _ in newest],
        "suggestions": suggestions or [],
        "dismissed": _dismissal_json(dismissed) if dismissed else None,
    }
    return out


def _flag(params: Params, name: str) -> bool:
    value = params.text(name)
    if value is None:
        return False
    if value.lower() not in ("true", "false"):
        raise bad_param(name, "must be true or false")
    return value.lower() == "true"


class UnknownSalesResource:
    """GET /api/admin/review/unknown?received_from=&received_to=&include_dismissed=&limit=:
    unknown sales grouped by normalised source and campaign, the most revenue first, with
    who they most likely belong to."""

    def __init__(self, store: ReviewStore, suggester: OwnerSuggester) -> None:
        self.store = store
        self.suggester = suggester

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = Params(req, ("received_from", "received_to", "include_dismissed", "limit"))
        since, until = time_range(params, "received_from", "received_to")
        include_dismissed = _flag(params, "include_dismissed")
        limit = params.integer("limit", 1, MAX_GROUPS, DEFAULT_GROUPS) or DEFAULT_GROUPS
        dismissed = self.store.dismissals()
        groups = [
            g
            for g in merge(self.store.unknown_sales(since, until))
            if include_dismissed or g.key not in dismissed
        ]
        shown = groups[:limit]
        suggestions = self.suggester.suggest(shown)
        per_group = suggestions.per_group or [[] for _ in shown]
        resp.media = {
            "received_from": iso(since),
            "received_to": iso(until),
            "groups": [
                _group_json(g, s, dismissed.get(g.key))
                for g, s in zip(shown, per_group, strict=True)
            ],
            "total_groups": len(groups),
            "total_count": sum(g.count for g in groups),
            "total_revenue": sum(g.revenue for g in groups),
            "rules_version": suggestions.rules_version,
            "rules_source": suggestions.rules_source,
            **({"suggestions_error": suggestions.error} if suggestions.error else {}),
        }


class DismissalsResource:
    """POST /api/admin/review/unknown/dismissals {"key", "reason"}: mark a group not
    attributable; DELETE ...?key=: put it back in the queue."""

    def __init__(self, store: ReviewStore) -> None:
        self.store = store

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        Params(req, ())
        body = _json_body(req)
        unknown = sorted(set(body) - {"key", "reason"})
        if unknown:
            raise bad_param(unknown[0], "unknown field; send key and reason")
        key = _text_field(body, "key", MAX_KEY, strip=False)
        reason = _text_field(body, "reason", MAX_REASON, strip=True)
        by = str(getattr(req.context, "admin", None) or DEFAULT_ADMIN)
        resp.media = _dismissal_json(self.store.dismiss(key, reason, by))
        resp.status = falcon.HTTP_201

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = Params(req, ("key",))
        key = params.params.get("key")
        if isinstance(key, list):
            raise bad_param("key", "given more than once")
        if not key:
            raise bad_param("key", "is required: the key of a dismissed group")
        if len(key) > MAX_KEY:
            raise bad_param("key", f"must be at most {MAX_KEY} characters")
        _storable("key", key)
        if not self.store.undismiss(key):
            raise falcon.HTTPNotFound(description=f"key: no dismissed group {key!r}")
        resp.status = falcon.HTTP_204


def _json_body(req: falcon.Request) -> dict[str, Any]:
    body = json_body(req, MAX_BODY_BYTES, 'a JSON object {"key", "reason"}')
    if not isinstance(body, dict):
        raise falcon.HTTPBadRequest(description='body: must be a JSON object {"key", "reason"}')
    return body


def _text_field(body: dict[str, Any], name: str, max_len: int, *, strip: bool) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise bad_param(name, "is required, as a string")
    if strip:
        value = value.strip()
    if not value:
        raise bad_param(name, "must not be empty")
    if len(value) > max_len:
        raise bad_param(name, f"must be at most {max_len} characters")
    return _storable(name, value)


def _storable(name: str, value: str) -> str:
    """Text the database can store and compare: no NUL, valid Unicode."""
    if "\x00" in value:
        raise bad_param(name, "must not contain NUL characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise bad_param(name, "must be valid Unicode text") from None
    return value
