"""The routing rules with their versions, over the router's GetRules, ListRulesVersions and
UpdateRules: GET and PUT /api/admin/rules, GET /api/admin/rules/versions.

The router validates, stores and applies the rules; these resources only translate HTTP to
its calls and back, and record which admin made a change."""

import json
from dataclasses import dataclass
from typing import Any

import falcon
import grpc

from amoroute.timeutil import to_datetime
from amoroute.v1 import router_pb2, router_pb2_grpc
from edge.access import admin_of
from edge.admin_json import iso
from edge.admin_params import INT64_MAX, Params, bad_param, json_body
from edge.upstream import upstream_error

SERVICE = "router_svc"
# Deadline of one call to the router from a rules page.
RULES_TIMEOUT_S = 5.0
# Bounds of an edit, the router's own (router_svc/service.py), checked here too so that
# an oversized body is refused before it travels.
MAX_YAML = 256 * 1024
MAX_COMMENT = 2_000
# A PUT body: the YAML escaped as JSON may take up to six bytes a character.
MAX_BODY_BYTES = 6 * (MAX_YAML + MAX_COMMENT) + 1_000
MAX_PAGE = 100
UPDATE_FIELDS = ("yaml", "expected_version", "comment")
SOURCES = {
    router_pb2.RULES_SOURCE_DATABASE: "database",
    router_pb2.RULES_SOURCE_FILE: "file",
}


def read_only_reason(path: str) -> str:
    return (
        f"ROUTING_RULES_SOURCE=file: the rules file {path} is authoritative (rules managed in "
        "git). Change the file; the router reloads it."
    )


def version_json(version: router_pb2.RulesVersion) -> dict[str, Any]:
    """One version of the rules: the YAML as written, the same rules as JSON, who stored
    it, when and why."""
    return {
        "version": version.version,
        "yaml": version.yaml,
        "rules": json.loads(version.json) if version.json else None,
        "created_at": iso(to_datetime("created_at", version.created_at)),
        "author": version.author,
        "comment": version.comment,
    }


class StaleVersion(falcon.HTTPConflict):
    """409: the editor started from a version that is no longer current. Says which one
    is, and who stored it, when the router tells."""

    def __init__(self, description: str, current: router_pb2.RulesVersion | None) -> None:
        super().__init__(title="Rules changed meanwhile", description=description)
        self.current = current

    def to_dict(self, obj_type: type = dict) -> Any:
        body = super().to_dict(obj_type)
        if self.current is not None:
            body["current_version"] = self.current.version
            body["current_author"] = self.current.author
        return body


@dataclass(frozen=True)
class RulesEdit:
    """A PUT body, checked."""

    yaml: str
    expected_version: int
    comment: str


def _text(body: dict[str, Any], name: str, limit: int, required: bool) -> str:
    value = body.get(name)
    if value is None:
        if required:
            raise bad_param(name, "is required: the whole rules document as YAML text")
        return ""
    if not isinstance(value, str):
        raise bad_param(name, "must be a string")
    if len(value) > limit:
        raise bad_param(name, f"must be at most {limit} characters")
    if "\x00" in value:
        raise bad_param(name, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_param(name, "must be Unicode text (it holds a lone surrogate)") from None
    return value


def read_edit(body: object) -> RulesEdit:
    """The body of PUT /api/admin/rules; 400 naming the field at fault."""
    if not isinstance(body, dict):
        raise bad_param("body", f"must be a JSON object with {', '.join(UPDATE_FIELDS)}")
    for name in body:
        if name not in UPDATE_FIELDS:
            raise bad_param(
                str(name)[:64], f"unknown field; this endpoint takes {', '.join(UPDATE_FIELDS)}"
            )
    expected = body.get("expected_version")
    # bool is an int in Python, not in JSON.
    if expected is None or isinstance(expected, bool) or not isinstance(expected, int):
        raise bad_param(
            "expected_version",
            "must be an integer: the version you started editing from (GET /api/admin/rules)",
        )
    if not 0 <= expected <= INT64_MAX:
        raise bad_param("expected_version", f"must be an integer from 0 to {INT64_MAX}")
    return RulesEdit(
        yaml=_text(body, "yaml", MAX_YAML, required=True),
        expected_version=expected,
        comment=_text(body, "comment", MAX_COMMENT, required=False),
    )


class RulesResource:
    """GET /api/admin/rules: the rules in force; PUT: store a new version."""

    def __init__(self, router: grpc.Channel, address: str) -> None:
        self.stub = router_pb2_grpc.RouterServiceStub(router)
        self.address = address

    def current_rules(self) -> router_pb2.GetRulesResponse:
        """The router's GetRules; 503 naming it when it does not answer."""
        try:
            reply: router_pb2.GetRulesResponse = self.stub.GetRules(
                router_pb2.GetRulesRequest(), timeout=RULES_TIMEOUT_S
            )
            return reply
        except grpc.RpcError as exc:
            raise upstream_error(SERVICE, self.address, exc) from None

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self.current_rules()
        read_only = reply.source == router_pb2.RULES_SOURCE_FILE
        resp.media = {
            **version_json(reply.current),
            "source": SOURCES.get(reply.source, "unknown"),
            "path": reply.path or None,
            "read_only": read_only,
            "read_only_reason": read_only_reason(reply.path) if read_only else None,
        }

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        edit = read_edit(
            json_body(req, MAX_BODY_BYTES, f"a JSON object with {', '.join(UPDATE_FIELDS)}")
        )
        request = router_pb2.UpdateRulesRequest(
            yaml=edit.yaml,
            expected_version=edit.expected_version,
            author=admin_of(req),
            comment=edit.comment,
        )
        try:
            reply = self.stub.UpdateRules(request, timeout=RULES_TIMEOUT_S)
        except grpc.RpcError as exc:
            raise self.update_error(exc) from None
        resp.media = version_json(reply.version)

    def update_error(self, exc: grpc.RpcError) -> falcon.HTTPError:
        """UpdateRules' error as HTTP: 409 stale version, 403 file mode, else upstream's."""
        code = exc.code()
        if code == grpc.StatusCode.ABORTED:
            try:
                current: router_pb2.RulesVersion | None = self.current_rules().current
            except falcon.HTTPError:
                current = None  # the 409 stands without the details
            return StaleVersion(str(exc.details()), current)
        if code == grpc.StatusCode.FAILED_PRECONDITION:
            return falcon.HTTPForbidden(title="Rules are read-only", description=exc.details())
        return upstream_error(SERVICE, self.address, exc)


class RulesVersionsResource:
    """GET /api/admin/rules/versions?page_size=&page_token=: every stored version, newest
    first, each with its diff to the one before."""

    def __init__(self, router: grpc.Channel, address: str) -> None:
        self.stub = router_pb2_grpc.RouterServiceStub(router)
        self.address = address

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = Params(req, ("page_size", "page_token"))
        request = router_pb2.ListRulesVersionsRequest(
            page_size=params.integer("page_size", 1, MAX_PAGE) or 0,
            page_token=params.text("page_token") or "",
        )
        try:
            reply = self.stub.ListRulesVersions(request, timeout=RULES_TIMEOUT_S)
        except grpc.RpcError as exc:
            raise upstream_error(SERVICE, self.address, exc) from None
        resp.media = {
            "items": [
                {**version_json(version), "diff": version.diff_to_previous}
                for version in reply.versions
            ],
            "next_page_token": reply.next_page_token or None,
        }
