"""The webhook's health: the answers AmoCRM would call invalid, the integration's state for
the admin's card, and the fix for a hook AmoCRM disabled.

AmoCRM disables a webhook after more than 100 invalid answers in 2 hours, an invalid answer
being any status outside 100-299 or an answer slower than 2 s. Every edge process counts its
invalid answers in memory and a background thread adds them to per-minute rows of
`webhook_invalid_answers`, so every process and replica adds to one rolling 2-hour count. The
webhook's hot path only compares its status and duration; a 503 (the event could not be
stored, the database is likely down) waits in memory until the database takes it.

Re-enabling: `POST /api/v4/webhooks` with the edge's webhook URL and the events amoroute needs,
then a reconciliation pass from the moment the hook was disabled (the worker marks that moment
in `edge_checkpoints` when it first sees the hook disabled: the previous check, when it was
still enabled)."""

import atexit
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from amoroute.db import is_postgres
from edge.amocrm_api import AmoCrmError, WebhookRegistration
from edge.log_store import WebhookLogStore, checkpoints, metadata
from edge.reconcile import CHECKPOINT, Reconciler

log = logging.getLogger(__name__)

# AmoCRM's rule: slower than this, or a status outside 100-299, is an invalid answer.
INVALID_AFTER_S = 2.0
WINDOW_S = 2 * 3600
# Rows older than this are deleted when counts are added.
KEEP_S = 24 * 3600
# How often a process adds what it counted to the database (only when it counted something).
FLUSH_EVERY_S = 1.0
# The events amoroute needs from the hook: a won deal, its changes and its reversal.
HOOK_EVENTS = ("status_lead", "update_lead", "add_lead", "delete_lead", "restore_lead")
WEBHOOK_PATH = "/webhook/amocrm"
# The edge_checkpoints row whose position is when the hook was last known enabled.
DISABLED_MARK = "hook_disabled"
SLOW = "slow"

invalid_answers = sa.Table(
    "webhook_invalid_answers",
    metadata,
    sa.Column("minute", sa.BigInteger, primary_key=True),
    sa.Column("cause", sa.String(20), primary_key=True),
    sa.Column("answers", sa.BigInteger, nullable=False),
)


def invalid_cause(status: str | int, elapsed_s: float) -> str | None:
    """Why AmoCRM would count this answer invalid: the status code ("503"), "slow" for a
    valid status answered after 2 s, or None when the answer is valid."""
    code = int(status) if isinstance(status, int) else int(str(status).split(" ", 1)[0])
    if not 100 <= code <= 299:
        return str(code)
    return SLOW if elapsed_s > INVALID_AFTER_S else None


class InvalidAnswerStore:
    """The per-minute counts every edge process adds to."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, counts: Mapping[tuple[int, str], int], now_s: float | None = None) -> None:
        """Add counts by (minute's unix seconds, cause); delete rows older than a day."""
        if not counts:
            return
        rows = [{"minute": m, "cause": c, "answers": n} for (m, c), n in counts.items()]
        insert = (postgresql if is_postgres(self.engine) else sqlite).insert(invalid_answers)
        upsert = insert.on_conflict_do_update(
            index_elements=["minute", "cause"],
            set_={"answers": invalid_answers.c.answers + insert.excluded.answers},
        )
        cutoff = int(now_s if now_s is not None else time.time()) - KEEP_S
        with self.engine.begin() as conn:
            conn.execute(upsert, rows)
            conn.execute(sa.delete(invalid_answers).where(invalid_answers.c.minute < cutoff))

    def recent(self, now_s: float | None = None) -> dict[str, int]:
        """Invalid answers of the last 2 hours by cause (whole minutes: the minute 2 hours
        ago counts in full)."""
        since = _minute(now_s if now_s is not None else time.time()) - WINDOW_S
        c = invalid_answers.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(c.cause, sa.func.sum(c.answers)).where(c.minute >= since)
                .group_by(c.cause)
            ).all()
        return {str(cause): int(total) for cause, total in rows}


def _minute(unix_s: float) -> int:
    return int(unix_s) // 60 * 60


class InvalidAnswerRecorder:
    """One process's invalid answers, counted in memory and added to the store by a daemon
    thread every FLUSH_EVERY_S while there are any (what the database refuses waits for the
    next try, and counts older than the window are dropped rather than kept forever)."""

    def __init__(
        self,
        store: InvalidAnswerStore,
        flush_every_s: float = FLUSH_EVERY_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.flush_every_s = flush_every_s
        self.clock = clock
        self._pending: dict[tuple[int, str], int] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, cause: str) -> None:
        """Count one invalid answer now (no I/O: the thread writes it)."""
        key = (_minute(self.clock()), cause)
        with self._lock:
            self._pending[key] = self._pending.get(key, 0) + 1
            if self._thread is None:  # started in the process that answers (after fork)
                self._thread = threading.Thread(
                    target=self._run, name="invalid-answers", daemon=True
                )
                self._thread.start()
                atexit.register(self.flush)
        self._wake.set()

    def flush(self) -> bool:
        """Add what was counted to the store now; False when the database refused it."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return True
        try:
            self.store.add(pending, self.clock())
            return True
        except SQLAlchemyError:
            log.warning("invalid webhook answers not stored yet; trying again", exc_info=True)
            oldest = _minute(self.clock()) - WINDOW_S
            with self._lock:
                for key, count in pending.items():
                    if key[0] >= oldest:
                        self._pending[key] = self._pending.get(key, 0) + count
            return False

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(self.flush_every_s)  # gather a burst into one write
            self._wake.clear()
            if not self.flush():
                self._wake.set()


def disabled_since(logs: WebhookLogStore) -> int | None:
    """When the hook was last known enabled before AmoCRM disabled it (unix seconds), or
    None when no disabled hook was noticed."""
    return logs.checkpoint(DISABLED_MARK)


def note_hook_state(
    logs: WebhookLogStore, disabled: bool, previous: dict[str, Any] | None, now_s: float
) -> None:
    """After a reconciliation pass: mark the moment the hook was last seen enabled (the
    previous pass, when it found the hook enabled) when it is first seen disabled; forget
    the mark once the hook is enabled again."""
    mark = logs.checkpoint(DISABLED_MARK)
    if disabled and mark is None:
        enabled_before = previous and not previous.get("hook_disabled") and not any(
            "webhook registration not checked" in e for e in previous.get("errors") or ()
        )
        since = int(previous["started_at"]) if enabled_before and previous else int(now_s)
        # Without an earlier enabled check, assume the worst AmoCRM allows: 2 h of failures.
        since = since if enabled_before else since - WINDOW_S
        logs.save_checkpoint(DISABLED_MARK, since, {"noticed_at": int(now_s)})
    elif not disabled and mark is not None:
        forget_disabled(logs)


def forget_disabled(logs: WebhookLogStore) -> None:
    """The hook is enabled again: drop the mark."""
    with logs.engine.begin() as conn:
        conn.execute(sa.delete(checkpoints).where(checkpoints.c.name == DISABLED_MARK))


class HookEnabled(Exception):
    """The webhook is registered and enabled: nothing to re-enable."""


class NoDestination(Exception):
    """Neither EDGE_PUBLIC_URL nor a registered hook says where AmoCRM should send events."""


def our_hooks(hooks: list[WebhookRegistration]) -> list[WebhookRegistration]:
    """The hooks pointing at the edge's webhook."""
    return [hook for hook in hooks if WEBHOOK_PATH in hook.destination]


def without_secret(destination: str) -> str:
    """The hook URL without the secret path segment after /webhook/amocrm/."""
    head, sep, tail = destination.partition(WEBHOOK_PATH + "/")
    return f"{head}{sep}…" if sep and tail else destination


def _iso(unix_s: float | None) -> str | None:
    return None if unix_s is None else datetime.fromtimestamp(unix_s, UTC).isoformat()


class HookHealth:
    """What the admin's AmoCRM card shows, and the re-enable action."""

    def __init__(
        self,
        logs: WebhookLogStore,
        answers: InvalidAnswerStore,
        reconciler: Reconciler | None,
        account: str,
        public_url: str,
        secret: str,
    ) -> None:
        self.logs = logs
        self.answers = answers
        self.reconciler = reconciler
        self.account = account
        self.public_url = public_url.rstrip("/")
        self.secret = secret

    def card(self) -> dict[str, Any]:
        """The account, the hook's state as the last reconciliation pass found it, that
        pass's findings, and the invalid answers of the last 2 hours."""
        report = self.logs.last_report(CHECKPOINT)
        by_cause = self.answers.recent()
        return {
            "account": self.account or None,
            "webhook": self._hook_state(report),
            "last_reconciliation": _summary(report),
            "invalid_answers_2h": {"total": sum(by_cause.values()), "by_cause": by_cause},
        }

    def _hook_state(self, report: dict[str, Any] | None) -> dict[str, Any]:
        since = disabled_since(self.logs)
        if report is None or report.get("hooks") is None:
            state = "unknown"
        elif report.get("hook_disabled"):
            state = "disabled"
        elif report.get("hooks"):
            state = "enabled"
        elif any("webhook registration not checked" in e for e in report.get("errors") or ()):
            state = "unknown"
        else:
            state = "missing"
        return {
            "state": state,
            "checked_at": _iso(report.get("started_at")) if report else None,
            "disabled_since": _iso(since) if state == "disabled" and since is not None else None,
            "destinations": [h.get("destination") for h in (report or {}).get("hooks") or []],
        }

    def destination(self, hooks: list[WebhookRegistration]) -> str:
        """The URL AmoCRM should send events to: EDGE_PUBLIC_URL's webhook path (with the
        secret), else the URL of the edge's hook AmoCRM has (the disabled one first)."""
        if self.public_url:
            path = f"{WEBHOOK_PATH}/{self.secret}" if self.secret else WEBHOOK_PATH
            return self.public_url + path
        ours = sorted(our_hooks(hooks), key=lambda hook: not hook.disabled)
        if not ours:
            raise NoDestination(
                "no AmoCRM webhook points at /webhook/amocrm and EDGE_PUBLIC_URL is not set: "
                "set EDGE_PUBLIC_URL to the edge's public address (https://<host>)"
            )
        return ours[0].destination

    def reenable(self) -> dict[str, Any]:
        """Register the webhook again, then reconcile from when it was disabled.
        HookEnabled when it is registered and enabled; NoDestination when no URL is known;
        AmoCrmError when AmoCRM refuses."""
        assert self.reconciler is not None
        api = self.reconciler.api
        hooks = api.list_webhooks()
        destination = self.destination(hooks)
        same = [hook for hook in hooks if hook.destination == destination]
        if same and not any(hook.disabled for hook in same):
            raise HookEnabled(f"the webhook {without_secret(destination)} is enabled already")
        since = disabled_since(self.logs)
        if since is None:  # never noticed by the worker: AmoCRM's 2-hour window at least
            since = int(time.time()) - WINDOW_S
        registered = api.register_webhook(destination, HOOK_EVENTS)
        if registered.disabled:
            raise AmoCrmError(
                "AmoCRM registered the webhook but still reports it disabled: remove it in "
                "AmoCRM (DELETE /api/v4/webhooks with its destination) and try again"
            )
        forget_disabled(self.logs)
        log.info(
            "webhook registered again",
            extra={"destination": without_secret(destination), "reconcile_from": since},
        )
        report = self.reconciler.run_from(since)
        return {
            "webhook": {
                "destination": without_secret(registered.destination),
                "disabled": registered.disabled,
                "settings": list(registered.settings),
            },
            "reconciled_from": _iso(since),
            "reconciliation": report.to_json(),
        }


def _summary(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the last reconciliation pass found, for the card."""
    if report is None or "started_at" not in report:
        return None
    return {
        "at": _iso(report["started_at"]),
        "leads_seen": report.get("leads_seen", 0),
        "already_routed": report.get("already_routed", 0),
        "routed": len(report.get("routed") or []),
        "errors": list(report.get("errors") or []),
    }
