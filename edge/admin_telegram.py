"""The Telegram chats that need someone: those the bot cannot reach, and those Telegram
moved (a group upgraded to a supergroup), over the notifier's ListNotifications and
ListChatMoves and the router's GetRules and UpdateRules.

GET /api/admin/telegram/chats lists both; for each move, the targetologists whose
telegram_chat_id in the rules still names the old id ("chat moved: update the rules").
POST /api/admin/telegram/chat-moves/update-rules makes that change when the rules live in
the router's database: a new version of the rules, signed by the admin, with each such
telegram_chat_id set to the chat the move leads to now.
"""

import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import falcon
import grpc

from amoroute.timeutil import to_datetime
from amoroute.v1 import notifier_pb2, notifier_pb2_grpc, router_pb2, router_pb2_grpc
from edge.access import admin_of
from edge.admin_json import iso
from edge.admin_params import bad_param, json_body
from edge.admin_rules import StaleVersion, read_only_reason
from edge.upstream import upstream_error

NOTIFIER, ROUTER = "notifier_svc", "router_svc"
# Deadline of one call from the page.
CALL_TIMEOUT_S = 5.0
# The newest failures read for the list of unreachable chats: a chat failing for
# longer shows with the count within them.
MAX_FAILURES = 5_000
MAX_MOVES = 1_000
PAGE = 1000
UPDATE_FIELDS = ("old_chat_id",)
# Telegram's chat id, as notifier_svc and the rules accept it.
CHAT_ID = re.compile(r"-?\d{1,20}|@[A-Za-z0-9_]{4,32}")


def _pages(fetch: Any, request: Any, items: str, limit: int) -> Iterator[Any]:
    """Every item of a paged List call, at most `limit`."""
    seen = 0
    while True:
        reply = fetch(request, timeout=CALL_TIMEOUT_S)
        for item in getattr(reply, items):
            if seen >= limit:
                return
            seen += 1
            yield item
        if not reply.next_page_token:
            return
        request.page_token = reply.next_page_token


def unreachable_chats(failures: list[notifier_pb2.Notification]) -> list[dict[str, Any]]:
    """Failed notifications (newest first) -> one entry per chat: the newest reason,
    how many failed, when the newest was created; the most recent chat first."""
    chats: dict[str, dict[str, Any]] = {}
    for n in failures:
        seen = to_datetime("created_at", n.created_at)
        entry = chats.get(n.chat_id)
        if entry is None:
            chats[n.chat_id] = {"chat_id": n.chat_id, "reason": n.error, "count": 1, "_at": seen}
            continue
        entry["count"] += 1
        if seen and (entry["_at"] is None or seen > entry["_at"]):
            entry["_at"], entry["reason"] = seen, n.error
    ordered = sorted(chats.values(), key=lambda e: e["_at"] or datetime.min, reverse=True)
    return [
        {"chat_id": e["chat_id"], "reason": e["reason"], "count": e["count"],
         "last_seen": iso(e.pop("_at"))}
        for e in ordered
    ]


def rules_targetologists(rules_json: str, chat_id: str) -> list[str]:
    """The targetologists whose telegram_chat_id in the rules is `chat_id`."""
    document = json.loads(rules_json or "{}")
    return [
        str(t.get("name", ""))
        for t in (document.get("traffic") or {}).get("targetologists") or []
        if str(t.get("telegram_chat_id", "")) == chat_id
    ]


_CHAT_SETTING = re.compile(
    r"""(?P<key>\btelegram_chat_id\s*:\s*)(?P<quote>["']?)(?P<value>-?\d+|@\w+)(?P=quote)"""
)


def replace_chat(yaml: str, old_chat_id: str, new_chat_id: str) -> tuple[str, int]:
    """The rules' YAML with every telegram_chat_id naming `old_chat_id` set to
    `new_chat_id` (quoted, as the rules file writes chat ids), all else kept as
    written (comments, order); returns it and how many were changed."""

    def swap(match: re.Match[str]) -> str:
        if match.group("value") != old_chat_id:
            return match.group(0)
        return f'{match.group("key")}"{new_chat_id}"'

    changed = sum(1 for m in _CHAT_SETTING.finditer(yaml) if m.group("value") == old_chat_id)
    return _CHAT_SETTING.sub(swap, yaml), changed


class _Calls:
    def __init__(
        self, notifier: grpc.Channel, notifier_addr: str, router: grpc.Channel, router_addr: str
    ) -> None:
        self.notifier = notifier_pb2_grpc.NotifierServiceStub(notifier)
        self.router = router_pb2_grpc.RouterServiceStub(router)
        self.notifier_addr = notifier_addr
        self.router_addr = router_addr

    def moves(self) -> list[notifier_pb2.ChatMove]:
        try:
            return list(
                _pages(
                    self.notifier.ListChatMoves,
                    notifier_pb2.ListChatMovesRequest(page_size=PAGE),
                    "chat_moves",
                    MAX_MOVES,
                )
            )
        except grpc.RpcError as exc:
            raise upstream_error(NOTIFIER, self.notifier_addr, exc) from None

    def rules(self) -> router_pb2.GetRulesResponse:
        try:
            reply: router_pb2.GetRulesResponse = self.router.GetRules(
                router_pb2.GetRulesRequest(), timeout=CALL_TIMEOUT_S
            )
            return reply
        except grpc.RpcError as exc:
            raise upstream_error(ROUTER, self.router_addr, exc) from None


class TelegramChatsResource(_Calls):
    """GET /api/admin/telegram/chats: unreachable chats and chat moves."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            failures = list(
                _pages(
                    self.notifier.ListNotifications,
                    notifier_pb2.ListNotificationsRequest(
                        page_size=PAGE,
                        failure=notifier_pb2.NOTIFICATION_FAILURE_CHAT_UNREACHABLE,
                    ),
                    "notifications",
                    MAX_FAILURES,
                )
            )
        except grpc.RpcError as exc:
            raise upstream_error(NOTIFIER, self.notifier_addr, exc) from None
        moves = self.moves()
        rules = self.rules()
        editable = rules.source == router_pb2.RULES_SOURCE_DATABASE
        resp.media = {
            "unreachable": unreachable_chats(failures),
            "failures_read": len(failures),
            "rules_version": rules.current.version,
            "rules_editable": editable,
            "rules_read_only_reason": None if editable else read_only_reason(rules.path),
            "moves": [
                {
                    "old_chat_id": m.old_chat_id,
                    "new_chat_id": m.new_chat_id,
                    "current_chat_id": m.current_chat_id,
                    "moved_at": iso(to_datetime("moved_at", m.moved_at)),
                    # Targetologists whose rules still name the old id: empty once updated.
                    "targetologists": rules_targetologists(rules.current.json, m.old_chat_id),
                }
                for m in moves
            ],
        }


class ChatMoveRulesResource(_Calls):
    """POST /api/admin/telegram/chat-moves/update-rules {"old_chat_id"}: set every
    telegram_chat_id naming the moved chat to where it leads now, as a new version of
    the rules signed by the admin."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_body(req, 1_000, 'a JSON object with "old_chat_id"')
        if not isinstance(body, dict):
            raise bad_param("body", 'must be a JSON object with "old_chat_id"')
        for name in body:
            if name not in UPDATE_FIELDS:
                raise bad_param(str(name)[:64], 'unknown field; this endpoint takes "old_chat_id"')
        old = body.get("old_chat_id")
        if not isinstance(old, str) or not CHAT_ID.fullmatch(old):
            raise bad_param("old_chat_id", "must be a Telegram chat id such as -1001234567890")
        move = next((m for m in self.moves() if m.old_chat_id == old), None)
        if move is None:
            raise bad_param("old_chat_id", f"Telegram has not moved chat {old}")
        rules = self.rules()
        if rules.source != router_pb2.RULES_SOURCE_DATABASE:
            raise falcon.HTTPForbidden(
                title="Rules are read-only", description=read_only_reason(rules.path)
            )
        yaml, changed = replace_chat(rules.current.yaml, old, move.current_chat_id)
        if not changed:
            raise falcon.HTTPConflict(
                title="Nothing to update",
                description=f"no telegram_chat_id of the rules names {old} any more",
            )
        request = router_pb2.UpdateRulesRequest(
            yaml=yaml,
            expected_version=rules.current.version,
            author=admin_of(req),
            comment=f"chat moved: telegram_chat_id {old} -> {move.current_chat_id}",
        )
        try:
            reply = self.router.UpdateRules(request, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.ABORTED:
                raise StaleVersion(str(exc.details()), None) from None
            raise upstream_error(ROUTER, self.router_addr, exc) from None
        resp.media = {
            "old_chat_id": old,
            "new_chat_id": move.current_chat_id,
            "changed": changed,
            "version": reply.version.version,
        }
