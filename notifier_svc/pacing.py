"""Spacing of sends within Telegram's limits: about one message a second per
chat and 25 a second overall. Per process: several replicas share the limit
only loosely, and Telegram's 429 answers (with retry_after) cover the rest."""

import threading
import time
from collections.abc import Callable

PER_CHAT_INTERVAL_S = 1.0
OVERALL_INTERVAL_S = 1 / 25


class Pacer:
    """Books send slots: one per chat every `per_chat_s`, one overall every `overall_s`."""

    def __init__(
        self,
        per_chat_s: float = PER_CHAT_INTERVAL_S,
        overall_s: float = OVERALL_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_chat_s = per_chat_s
        self.overall_s = overall_s
        self.clock = clock
        self._lock = threading.Lock()
        self._next_overall = 0.0
        self._next_by_chat: dict[str, float] = {}

    def reserve(self, chat_id: str, max_wait_s: float) -> float | None:
        """Book the earliest slot for a message to `chat_id` and return the seconds
        to wait for it; None, booking nothing, when it is more than `max_wait_s` away."""
        with self._lock:
            now = self.clock()
            slot = max(now, self._next_overall, self._next_by_chat.get(chat_id, 0.0))
            if slot - now > max_wait_s:
                return None
            self._next_overall = slot + self.overall_s
            self._next_by_chat[chat_id] = slot + self.per_chat_s
            if len(self._next_by_chat) > 1000:
                self._forget_idle_chats(now)
            return slot - now

    def hold(self, chat_id: str, seconds: float) -> None:
        """No message to `chat_id` for `seconds` (Telegram's retry_after)."""
        with self._lock:
            until = self.clock() + seconds
            self._next_by_chat[chat_id] = max(self._next_by_chat.get(chat_id, 0.0), until)

    def _forget_idle_chats(self, now: float) -> None:
        self._next_by_chat = {c: t for c, t in self._next_by_chat.items() if t > now}
