"""Telegram Bot API client: sendMessage and what its answer means for a retry.

The bot token is part of every Bot API URL, so it never appears in an error
message, and the URLs httpx logs are redacted.
"""

import enum
import logging
import re
from dataclasses import dataclass

import httpx

_BOT_PATH = re.compile(r"/bot[^/\s]+/")


class _RedactBotToken(logging.Filter):
    """httpx logs every request URL at INFO; hide the token in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/bot" in message:
            record.msg, record.args = _BOT_PATH.sub("/bot<redacted>/", message), None
        return True


logging.getLogger("httpx").addFilter(_RedactBotToken())


class Outcome(enum.Enum):
    SENT = "sent"
    RETRY = "retry"  # Telegram busy or unreachable: try again later
    FAILED = "failed"  # Telegram refused this message: retrying will not help
    # The bot was blocked or removed (403), or the chat does not exist (400 "chat not
    # found"): no message to this chat can get through until someone fixes it.
    CHAT_UNREACHABLE = "chat_unreachable"
    # The group was upgraded to a supergroup (400 with parameters.migrate_to_chat_id):
    # the chat lives on under the id in SendResult.migrate_to_chat_id.
    CHAT_MIGRATED = "chat_migrated"


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    message_id: int | None = None
    # Seconds Telegram asked us to wait (429), when it said.
    retry_after_s: float | None = None
    error: str = ""
    # The chat's new id (CHAT_MIGRATED), as the chat_id to send to.
    migrate_to_chat_id: str | None = None


class TelegramClient:
    """One bot's sendMessage over a reused HTTP connection pool; thread-safe."""

    def __init__(self, api_url: str, token: str, timeout_s: float) -> None:
        self._token = token
        self._url = f"{api_url.rstrip('/')}/bot{token}/sendMessage"
        # httpx bounds each phase, not the whole call: half the budget each for
        # connecting and for waiting on the answer keeps one call within timeout_s.
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s / 2))

    def send_message(self, chat_id: str, text: str) -> SendResult:
        """Send `text` (HTML parse mode, no link preview) to `chat_id`, once."""
        payload = {
            "chat_id": chat_id,
            "text": text,
            "parse_mode": "HTML",
            "disable_web_page_preview": True,
        }
        try:
            response = self._http.post(self._url, json=payload)
        except httpx.TimeoutException:
            return SendResult(Outcome.RETRY, error="Telegram did not answer in time")
        except httpx.HTTPError as exc:
            return SendResult(Outcome.RETRY, error=self._redact(f"cannot reach Telegram: {exc}"))
        return self._classify(response)

    def close(self) -> None:
        self._http.close()

    def _classify(self, response: httpx.Response) -> SendResult:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        description = self._redact(str(body.get("description") or response.reason_phrase))
        if status == 200 and body.get("ok") is True:
            result = body.get("result") or {}
            return SendResult(Outcome.SENT, message_id=result.get("message_id"))
        if status == 429:
            retry_after = (body.get("parameters") or {}).get("retry_after")
            return SendResult(
                Outcome.RETRY,
                retry_after_s=float(retry_after) if isinstance(retry_after, int | float) else None,
                error=f"Telegram rate limit (429): {description}",
            )
        migrate_to = (body.get("parameters") or {}).get("migrate_to_chat_id")
        if status == 400 and isinstance(migrate_to, int) and not isinstance(migrate_to, bool):
            return SendResult(
                Outcome.CHAT_MIGRATED,
                migrate_to_chat_id=str(migrate_to),
                error=f"Telegram moved this chat to {migrate_to} ({status}): {description}",
            )
        if status >= 500 or (status == 200 and not body):
            return SendResult(Outcome.RETRY, error=f"Telegram error ({status}): {description}")
        if status == 403 or (status == 400 and "chat not found" in description.lower()):
            return SendResult(
                Outcome.CHAT_UNREACHABLE,
                error=f"Telegram cannot deliver to this chat ({status}): {description}; "
                "add the bot to the chat (or fix telegram_chat_id in the routing rules)",
            )
        return SendResult(Outcome.FAILED, error=f"Telegram refused the message ({status}): "
                          f"{description}")

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "<redacted>") if self._token else text
