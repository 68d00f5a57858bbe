"""A real HTTP server standing in for the Telegram Bot API in tests.

    with FakeTelegram() as telegram:            # answers every sendMessage with ok
        telegram.reply_next(Reply.too_many_requests(retry_after=1), Reply.server_error())
        ... point TELEGRAM_API_URL at telegram.url ...
        assert [r.body["chat_id"] for r in telegram.delivered] == ["-100123"]

Every request is recorded (path, token, method, JSON body, the status answered).
Scripted replies answer the next calls in order; after them, calls succeed again.
"""

import json
import threading
import time
from collections import deque
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
    def forbidden(cls, description: str = "Forbidden: bot was blocked by the user") -> "Reply":
        return cls(403, _error(403, description))

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

    @property
    def delivered(self) -> bool:
        return self.status == 200


def _error(code: int, description: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error_code": code, "description": description, **extra}


class FakeTelegram:
    """Bot API on 127.0.0.1 (any free port). With `token` set, calls made with
    another token get 401 Unauthorized, as Telegram answers them."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token
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
        with self._lock:
            if self.token is not None and token != self.token:
                reply = Reply(401, _error(401, "Unauthorized"))
            elif self._script:
                reply = self._script.popleft()
            else:
                reply = Reply(200)
            if reply.status == 200 and not reply.body:
                reply = Reply(200, self._success(method, body), reply.delay_s)
            recorded = RecordedRequest(path, token, method, body, reply.status)
        return reply, recorded

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
