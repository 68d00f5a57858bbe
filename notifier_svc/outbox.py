"""Delivery of stored notifications: a background sender that sends pending rows
as soon as it is woken (or every sweep interval), within Telegram's pace, and
retries them until sent or given up."""

import logging
import threading
import time
from dataclasses import replace
from datetime import timedelta

from amoroute.backoff import Backoff
from amoroute.timeutil import now
from notifier_svc.pacing import Pacer
from notifier_svc.store import NotificationRow, NotificationStore
from notifier_svc.telegram import Outcome, TelegramClient

log = logging.getLogger(__name__)

# 2 s after the first failed send, doubling up to 10 min; the 8th failed send is the last.
RETRIES = Backoff(first_s=2.0, max_s=600.0, tries=8)
SWEEP_INTERVAL_S = 1.0
# However often it is woken, the sender sweeps at most once per this many seconds.
MIN_SWEEP_GAP_S = 0.2
# Chats a sweep serves at most (each its longest-waiting due row).
SWEEP_CHATS = 50


def retry_delay(attempts: int, retry_after_s: float | None, retries: Backoff = RETRIES) -> float:
    """Seconds before the next try after `attempts` failed ones: what Telegram asked
    for when it said (429 retry_after), otherwise the backoff of `retries`."""
    if retry_after_s is not None:
        return max(retry_after_s, 0.0)
    return retries.delay_s(attempts)


class Outbox:
    """Sends pending notifications; a row is sent by whoever holds its lease."""

    def __init__(
        self,
        store: NotificationStore,
        telegram: TelegramClient,
        *,
        timeout_s: float,
        pacer: Pacer | None = None,
        interval_s: float = SWEEP_INTERVAL_S,
        max_attempts: int = RETRIES.tries,
        backoff_base_s: float = RETRIES.first_s,
    ) -> None:
        self.store = store
        self.telegram = telegram
        self.pacer = pacer or Pacer()
        self.interval_s = interval_s
        self.retries = replace(RETRIES, first_s=backoff_base_s, tries=max_attempts)
        # Long enough for one attempt; a sender that dies keeps the row this long.
        self.lease = timedelta(seconds=max(30.0, 4 * timeout_s))
        self._stop = threading.Event()
        self._woken = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """Sweep now rather than at the next interval: a row was just queued."""
        self._woken.set()

    def sweep(self) -> int:
        """Try the longest-waiting due row of each chat once, as the pace allows;
        returns how many were tried. One row per chat and sweep: a chat's pace
        allows about one a second anyway, and a busy chat's backlog does not
        hold up the others."""
        tried = 0
        for row in self.store.due(now(), SWEEP_CHATS):
            if self._stop.is_set():
                break
            wait = self.pacer.reserve(row.chat_id, self.interval_s)
            if wait is None:  # its chat is busy: a later sweep takes it
                continue
            if self._stop.wait(wait):
                break
            if not self.store.claim(row.id, now(), now() + self.lease):
                continue  # another sender took it
            self._attempt(row)
            tried += 1
        return tried

    def start(self) -> None:
        """Sweep in a background thread when woken, and at least every interval_s,
        until stop()."""
        self._thread = threading.Thread(target=self._run, name="notifier-outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the attempt in progress (within `timeout_s`) and stop sweeping."""
        self._stop.set()
        self._woken.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            # Cleared before the sweep: a row queued during it wakes the next one.
            self._woken.clear()
            started = time.monotonic()
            try:
                self.sweep()
            except Exception:  # the database may be away for a while: keep sweeping
                log.exception("outbox sweep failed")
            self._woken.wait(self.interval_s)
            # Every Notify wakes the sender: a busy chat must not turn that into a
            # query loop, so sweeps are spaced however many wakes arrive.
            self._stop.wait(max(0.0, started + MIN_SWEEP_GAP_S - time.monotonic()))

    def _attempt(self, row: NotificationRow) -> None:
        result = self.telegram.send_message(row.chat_id, row.text)
        attempts = row.attempts + 1
        context = {"lead_id": row.lead_id, "chat_id": row.chat_id, "attempts": attempts}
        if result.outcome is Outcome.SENT:
            self.store.mark_sent(row.id, result.message_id)
            log.info("notification sent", extra=context)
            return
        if result.outcome is Outcome.RETRY and not self.retries.gives_up(attempts):
            if result.retry_after_s is not None:
                self.pacer.hold(row.chat_id, result.retry_after_s)
            delay = retry_delay(attempts, result.retry_after_s, self.retries)
            self.store.mark_retry(row.id, result.error, now() + timedelta(seconds=delay))
            log.warning(
                "notification not sent, will retry",
                extra={**context, "error": result.error, "retry_in_s": delay},
            )
            return
        error = result.error
        if result.outcome is Outcome.RETRY:
            error = f"gave up after {attempts} attempts: {error}"
        self.store.mark_failed(row.id, error)
        log.error("notification failed", extra={**context, "error": error})
