"""Delivery of stored notifications: a background sender that sends each chat's
waiting sales as soon as it is woken (or every sweep interval), within Telegram's
limits for the bot as a whole, and retries them until sent or given up.

In a burst a chat's sales wait for its next free slot (a group gets 20 messages a
minute); whatever waits by then goes out as one digest message, so a campaign
day's 300 sales take a few dozen messages instead of 15 minutes of single ones."""

import logging
import threading
import time
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta

from amoroute import tracing
from amoroute.backoff import Backoff
from amoroute.timeutil import now
from notifier_svc.chat_moves import rules_action
from notifier_svc.message import pack_digest
from notifier_svc.metrics import CHAT_MOVES, RATE_LIMITED, count_finished
from notifier_svc.pacing import ChatLimits
from notifier_svc.store import Failure, NotificationRow, NotificationStore, RowChange, Status
from notifier_svc.telegram import Outcome, SendResult, TelegramClient

log = logging.getLogger(__name__)

# 2 s after the first failed send, doubling up to 10 min; the 8th failed send is the last.
RETRIES = Backoff(first_s=2.0, max_s=600.0, tries=8)
SWEEP_INTERVAL_S = 1.0
# However often it is woken, the sender sweeps at most once per this many seconds.
MIN_SWEEP_GAP_S = 0.2
# Chats a sweep serves at most (one message each).
SWEEP_CHATS = 50
# Waiting rows of a chat read for one digest: more than one message holds.
DIGEST_ROWS = 200
# Moves followed in one go when Telegram moves a chat (it moves a group once, into
# a supergroup); past this the rows wait for the next sweep.
MAX_MOVES_AT_ONCE = 4


def retry_delay(attempts: int, retry_after_s: float | None, retries: Backoff = RETRIES) -> float:
    """Seconds before the next try after `attempts` failed ones: what Telegram asked
    for when it said (429 retry_after), otherwise the backoff of `retries`."""
    if retry_after_s is not None:
        return max(retry_after_s, 0.0)
    return retries.delay_s(attempts)


def compose(rows: list[NotificationRow], currency: str) -> tuple[str, list[NotificationRow]]:
    """The next message for a chat's waiting rows (oldest first), and the rows it
    announces. A lone sale goes as its own message; several make a digest of as
    many whole sales as fit in one message (the rest wait for the next slot). A
    row stored before digests existed has no digest lines and goes alone."""
    digestable = [r for r in rows if r.digest_entry is not None and r.amount is not None]
    if rows[0].digest_entry is None or len(digestable) < 2:
        return rows[0].text, [rows[0]]
    entries = [(r.digest_entry or "", r.amount or 0) for r in digestable]
    text, count = pack_digest(entries, currency)
    if count == 1:
        return digestable[0].text, digestable[:1]
    return text, digestable[:count]


class Outbox:
    """Sends pending notifications; a chat's rows are sent by whoever holds its lease."""

    def __init__(
        self,
        store: NotificationStore,
        telegram: TelegramClient,
        *,
        timeout_s: float,
        limits: ChatLimits | None = None,
        currency: str = "KZT",
        interval_s: float = SWEEP_INTERVAL_S,
        max_attempts: int = RETRIES.tries,
        backoff_base_s: float = RETRIES.first_s,
    ) -> None:
        self.store = store
        self.telegram = telegram
        self.limits = limits or ChatLimits()
        self.currency = currency
        self.interval_s = interval_s
        self.retries = replace(RETRIES, first_s=backoff_base_s, tries=max_attempts)
        # Long enough for one attempt; a sender that dies keeps the chat this long.
        self.lease = timedelta(seconds=max(30.0, 4 * timeout_s))
        self._stop = threading.Event()
        self._woken = threading.Event()
        self._thread: threading.Thread | None = None
        # When a chat this sender left with a backlog may next be sent to.
        self._backlog_due: datetime | None = None

    def wake(self) -> None:
        """Sweep now rather than at the next interval: a row was just queued."""
        self._woken.set()

    def sweep(self) -> int:
        """Send one message to each chat whose slot has come and which has due rows,
        longest waiting first; returns how many messages were tried. One per chat
        and sweep: a busy chat's backlog does not hold up the others, and what
        piles up for it meanwhile goes out as one digest at its next slot."""
        tried = 0
        self._backlog_due = None
        for row in self.store.due(now(), SWEEP_CHATS):
            if self._stop.is_set():
                break
            token = self.store.claim_chat(row.chat_id, now(), now() + self.lease)
            if token is None:  # another sender holds it, or its slot has not come
                continue
            if self._send(row.chat_id, token):
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
            # PERF: a chat left with a backlog is swept again at its next slot, not at
            # the next interval, so in a burst every slot of the chat carries a message;
            # measured by python -m bench.notifier_burst.
            wait = self.interval_s
            if self._backlog_due is not None:
                wait = min(wait, max(0.0, (self._backlog_due - now()).total_seconds()))
            self._woken.wait(wait)
            # Every Notify wakes the sender: a busy chat must not turn that into a
            # query loop, so sweeps are spaced however many wakes arrive.
            self._stop.wait(max(0.0, started + MIN_SWEEP_GAP_S - time.monotonic()))

    def _send(self, chat_id: str, token: str, moves: int = 0) -> bool:
        """Send the chat's next message while holding its lease; False if there was
        nothing left to send or the sender is stopping. `moves`: how many times
        Telegram has moved the chat during this send."""
        rows = self.store.due_in_chat(chat_id, now(), DIGEST_ROWS)
        if not rows:  # another sender took them just before this one claimed the chat
            self.store.record(chat_id, token, now(), [])
            return False
        text, batch = compose(rows, self.currency)
        slot = self.store.reserve_bot_slot(now(), timedelta(seconds=self.limits.bot_interval_s))
        if self._stop.wait(max(0.0, (slot - now()).total_seconds())):
            self.store.record(chat_id, token, now(), [])
            return False
        # The send joins the trace of the (first) sale it announces, linking the others.
        with tracing.span_for(
            "telegram send", [r.traceparent for r in batch], notifications=len(batch)
        ):
            result = self.telegram.send_message(chat_id, text)
        # The chat's next slot counts from Telegram's answer, so two messages reach
        # Telegram at least the chat's interval apart, whichever replica sends them.
        answered = now()
        if result.outcome is Outcome.CHAT_MIGRATED and result.migrate_to_chat_id:
            return self._follow_move(chat_id, token, batch, result, answered, moves)
        next_send_at = answered + timedelta(seconds=self.limits.chat_interval_s(chat_id))
        if result.retry_after_s is not None:
            RATE_LIMITED.inc()
            next_send_at = max(next_send_at, answered + timedelta(seconds=result.retry_after_s))
        # Exactly once while nothing crashes: the rows are marked sent in the same
        # transaction that records the send. A crash between the send and this
        # commit leaves them pending for the next holder of the chat, which sends
        # them again: the outbox's rule is at least once, never lost.
        changes = self._changes(batch, result, answered)
        count_finished(self.store.record(chat_id, token, next_send_at, changes))
        self._log(chat_id, batch, result)
        if len(rows) > len(batch) or result.outcome is Outcome.RETRY:
            soonest = self._backlog_due or next_send_at
            self._backlog_due = min(soonest, next_send_at)
        return True

    def _follow_move(
        self,
        chat_id: str,
        token: str,
        batch: list[NotificationRow],
        result: SendResult,
        answered: datetime,
        moves: int,
    ) -> bool:
        """The group became a supergroup: move the chat's waiting sales to its new id
        and, holding the new chat, resend them at once (within its limits)."""
        new_chat_id = result.migrate_to_chat_id or ""
        move = self.store.move_chat(
            chat_id, new_chat_id, token, [r.id for r in batch], answered, answered + self.lease
        )
        if move is None:
            # Telegram never moves a chat back; a move that would is refused, so the
            # sales cannot bounce between two ids.
            error = f"{result.error}, which would lead the chat back to itself: not followed"
            changes = [RowChange([r.id for r in batch], Status.FAILED, error, Failure.REFUSED)]
            next_send_at = answered + timedelta(seconds=self.limits.chat_interval_s(chat_id))
            count_finished(self.store.record(chat_id, token, next_send_at, changes))
            self._log(chat_id, batch, replace(result, outcome=Outcome.FAILED, error=error))
            return True
        if move.recorded:
            CHAT_MOVES.inc()
            log.warning(
                "Telegram moved chat %s to %s (group upgraded to a supergroup); %s",
                chat_id,
                new_chat_id,
                rules_action(chat_id, move.current_chat_id),
                extra={
                    "old_chat_id": chat_id,
                    "new_chat_id": new_chat_id,
                    "current_chat_id": move.current_chat_id,
                    "moved_notifications": move.moved,
                    "lead_ids": [r.lead_id for r in batch],
                },
            )
        if move.holding and moves < MAX_MOVES_AT_ONCE:
            return self._send(move.current_chat_id, token, moves + 1) or True
        if move.holding:
            self.store.record(move.current_chat_id, token, answered, [])
        # Another sender holds the new chat, or its pace is not up: the moved sales
        # wait there and are swept at its next slot.
        self._backlog_due = min(self._backlog_due or answered, answered)
        return True

    def _changes(
        self, batch: list[NotificationRow], result: SendResult, answered: datetime
    ) -> list[RowChange]:
        ids = [r.id for r in batch]
        if result.outcome is Outcome.SENT:
            return [RowChange(ids, Status.SENT, message_id=result.message_id, sent_at=answered)]
        if result.outcome is Outcome.CHAT_UNREACHABLE:
            # Every waiting row of the chat, not only this message's: none can get through.
            return [RowChange(None, Status.FAILED, result.error, Failure.CHAT_UNREACHABLE)]
        if result.outcome is Outcome.FAILED and len(batch) > 1:
            # Telegram refused the digest itself: each sale goes alone next, so a
            # refusal fails only the sale it is about.
            return [RowChange(ids, Status.PENDING, result.error, next_attempt_at=answered,
                              alone=True)]
        if result.outcome is Outcome.FAILED:
            return [RowChange(ids, Status.FAILED, result.error, Failure.REFUSED)]
        by_attempts: dict[int, list[int]] = defaultdict(list)
        for row in batch:
            by_attempts[row.attempts + 1].append(row.id)
        changes = []
        for attempts, same in by_attempts.items():
            if self.retries.gives_up(attempts):
                error = f"gave up after {attempts} attempts: {result.error}"
                changes.append(RowChange(same, Status.FAILED, error, Failure.GAVE_UP))
            else:
                delay = retry_delay(attempts, result.retry_after_s, self.retries)
                at = answered + timedelta(seconds=delay)
                changes.append(RowChange(same, Status.PENDING, result.error, next_attempt_at=at))
        return changes

    def _log(self, chat_id: str, batch: list[NotificationRow], result: SendResult) -> None:
        context = {
            "chat_id": chat_id,
            "lead_ids": [r.lead_id for r in batch],
            "attempts": max(r.attempts for r in batch) + 1,
        }
        if result.outcome is Outcome.SENT:
            log.info("notification sent", extra=context)
        elif result.outcome is Outcome.RETRY:
            log.warning(
                "notification not sent, will retry", extra={**context, "error": result.error}
            )
        else:
            log.error("notification failed", extra={**context, "error": result.error})
