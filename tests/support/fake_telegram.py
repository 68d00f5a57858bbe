"""A real HTTP server standing in for the Telegram Bot API in tests.

    with FakeTelegram() as telegram:            # answers every sendMessage with ok
        telegram.reply_next(Reply.too_many_requests(retry_after=1), Reply.server_error())
        ... point TELEGRAM_API_URL at telegram.url ...
        assert [r.body["chat_id"] for r in telegram.delivered] == ["-100123"]

Every request is recorded (path, token, method, JSON body, the status answered,
when it arrived). Scripted replies answer the next calls in order; after them,
calls succeed again.

Like the real Bot API it can also enforce Telegram's limits and refuse chats
the bot cannot reach (both off unless asked for):

    with FakeTelegram(limits=Limits()) as telegram:    # 1/s per private chat,
        telegram.make_unreachable("-100777")          # 20 per 60 s per group, 30/s
        ...                                           # overall, else 429 retry_after

and move a group to a new id, as upgrading it to a supergroup does:

    telegram.upgrade_to_supergroup("-4001", "-1004001")  # sends to -4001 get 400 with
                                                         # parameters.migrate_to_chat_id
"""

import json
import math
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One scripted answer: HTTP status and Bot API JSON, optionally after a delay."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    delay_s: float = 0.0

    @classmethod
    def too_many_requests(cls, retry_after: int = 1) -> "Reply":
        return cls(429, _error(429, f"Too Many Requests: retry after {retry_after}",
                               parameters={"retry_after": retry_after}))

    @classmethod
    def server_error(cls, status: int = 500) -> "Reply":
        return cls(status, _error(status, "Internal Server Error"))

    @classmethod
    def bad_request(cls, description: str = "Bad Request: chat not found") -> "Reply":
        return cls(400, _error(400, description))

    @classmethod
    def migrated(cls, new_chat_id: str) -> "Reply":
        """Telegram's answer to a send to a group that was upgraded to a supergroup."""
        return cls(400, _error(400, "Bad Request: group chat was upgraded to a supergroup chat",
                               parameters={"migrate_to_chat_id": int(new_chat_id)}))

    @classmethod
    def forbidden(cls, description: str = "Forbidden: bot was blocked by the user") -> "Reply":
        return cls(403, _error(403, description))

    @classmethod
    def kicked(cls) -> "Reply":
        return cls.forbidden("Forbidden: bot was kicked from the group chat")

    @classmethod
    def slow(cls, delay_s: float) -> "Reply":
        """A success that comes only after `delay_s` (to exceed a client timeout)."""
        return cls(200, {}, delay_s)


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    token: str
    method: str  # Bot API method, e.g. "sendMessage"
    body: dict[str, Any]
    status: int  # what the fake answered
    at: float = 0.0  # time.monotonic() when it arrived

    @property
    def delivered(self) -> bool:
        return self.status == 200


@dataclass(frozen=True)
class Limits:
    """Telegram's limits as the Bot FAQ gives them; a sendMessage beyond one is
    answered 429 with parameters.retry_after (whole seconds, as Telegram does)."""

    # A private chat (positive id): one message per this many seconds.
    private_interval_s: float = 1.0
    # A group or channel (negative id, @name): at most this many in any window.
    group_messages: int = 20
    group_window_s: float = 60.0
    # The bot over all chats: at most this many in any second.
    bot_per_s: int = 30


def _error(code: int, description: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error_code": code, "description": description, **extra}


class FakeTelegram:
    """Bot API on 127.0.0.1 (any free port). With `token` set, calls made with
    another token get 401 Unauthorized, as Telegram answers them."""

    def __init__(self, token: str | None = None, limits: Limits | None = None) -> None:
        self.token = token
        self.limits = limits
        self._unreachable: dict[str, Reply] = {}
        self._upgraded: dict[str, str] = {}
        # Arrival times of delivered messages, per chat and overall, for the limits.
        self._delivered_at: defaultdict[str, deque[float]] = defaultdict(deque)
        self._bot_delivered_at: deque[float] = deque()
        self._lock = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self._script: deque[Reply] = deque()
        self._next_message_id = 1
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-telegram", daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL to use as TELEGRAM_API_URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def reply_next(self, *replies: Reply) -> None:
        """Answer the next len(replies) calls with these, in order."""
        with self._lock:
            self._script.extend(replies)

    def make_unreachable(self, chat_id: str, reply: Reply | None = None) -> None:
        """Answer every sendMessage to `chat_id` with `reply` (default: 403, the bot
        was kicked), as Telegram does for a chat the bot cannot post to."""
        with self._lock:
            self._unreachable[chat_id] = reply or Reply.kicked()

    def upgrade_to_supergroup(self, chat_id: str, new_chat_id: str) -> None:
        """Move the group `chat_id` to `new_chat_id`: every sendMessage to the old id
        is answered 400 with parameters.migrate_to_chat_id, as Telegram answers it;
        the new id takes messages like any chat (within the limits)."""
        with self._lock:
            self._upgraded[chat_id] = new_chat_id

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every call so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def delivered(self) -> list[RecordedRequest]:
        """sendMessage calls answered with success: the messages a chat would show."""
        return [r for r in self.requests if r.method == "sendMessage" and r.delivered]

    def wait_for_requests(self, count: int, timeout_s: float = 10.0) -> list[RecordedRequest]:
        """Block until at least `count` calls arrived (or the timeout); returns them all."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while len(self._requests) < count and time.monotonic() < deadline:
                self._lock.wait(deadline - time.monotonic())
            return list(self._requests)

    def __enter__(self) -> "FakeTelegram":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _answer(self, path: str, raw: bytes) -> tuple[Reply, RecordedRequest | None]:
        parts = path.split("?", 1)[0].strip("/").split("/")
        if len(parts) != 2 or not parts[0].startswith("bot"):
            return Reply(404, _error(404, "Not Found")), None
        token, method = parts[0][3:], parts[1]
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        chat = str(body.get("chat_id", ""))
        with self._lock:
            arrived = time.monotonic()
            if self.token is not None and token != self.token:
                reply = Reply(401, _error(401, "Unauthorized"))
            elif method == "sendMessage" and chat in self._unreachable:
                reply = self._unreachable[chat]
            elif method == "sendMessage" and chat in self._upgraded:
                reply = Reply.migrated(self._upgraded[chat])
            elif self._script:
                reply = self._script.popleft()
            elif method == "sendMessage" and (wait := self._over_limit(chat, arrived)):
                reply = Reply.too_many_requests(retry_after=wait)
            else:
                reply = Reply(200)
            if reply.status == 200 and not reply.body:
                reply = Reply(200, self._success(method, body), reply.delay_s)
            if method == "sendMessage" and reply.status == 200:
                self._delivered_at[chat].append(arrived)
                self._bot_delivered_at.append(arrived)
            recorded = RecordedRequest(path, token, method, body, reply.status, arrived)
        return reply, recorded

    def _over_limit(self, chat: str, at: float) -> int:
        """Whole seconds to wait when a message to `chat` at `at` breaks a limit, else 0."""
        if self.limits is None:
            return 0
        limits, waits = self.limits, []
        bot = self._bot_delivered_at
        while bot and bot[0] <= at - 1.0:
            bot.popleft()
        if len(bot) >= limits.bot_per_s:
            waits.append(bot[0] + 1.0 - at)
        sent = self._delivered_at[chat]
        if chat.isdigit():
            while len(sent) > 1:
                sent.popleft()
            if sent and at - sent[-1] < limits.private_interval_s:
                waits.append(sent[-1] + limits.private_interval_s - at)
        else:
            while sent and sent[0] <= at - limits.group_window_s:
                sent.popleft()
            if len(sent) >= limits.group_messages:
                waits.append(sent[0] + limits.group_window_s - at)
        return max(1, math.ceil(max(waits))) if waits else 0

    def _record(self, recorded: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(recorded)
            self._lock.notify_all()

    def _success(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        if method != "sendMessage":
            return {"ok": True, "result": True}
        message_id, self._next_message_id = self._next_message_id, self._next_message_id + 1
        chat = body.get("chat_id")
        return {
            "ok": True,
            "result": {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": chat, "type": "supergroup"},
                "text": body.get("text", ""),
            },
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                reply, recorded = fake._answer(self.path, raw)
                if recorded is not None:
                    fake._record(recorded)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                payload = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # keep test output clean (and the bot token out of it)

        return Handler
