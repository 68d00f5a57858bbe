"""What happens to a webhook_logs event after each processing attempt: its status,
decision, legs, error, next retry time and giving up. Pure: edge/log_store.py only
saves what next_state() computes (its PostgreSQL statement restates it, and
tests/edge/test_event_lifecycle_parity.py holds the two to the same table)."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from amoroute.backoff import Backoff

PENDING, SUCCESS, PARTIAL, ERROR = "pending", "success", "partial", "error"
STATUSES = (PENDING, SUCCESS, PARTIAL, ERROR)
DECISIONS = ("referral", "traffic", "both", "unknown", "ignored")
# Leg outcomes a retry does not repeat.
DONE_LEGS = ("recorded", "duplicate", "superseded", "reversed", "reattributed", "withdrawn")

# A pending event whose outcome never got recorded (the edge died mid-request)
# is picked up by the worker after this long.
INTAKE_LEASE = timedelta(seconds=30)
# 5 s after the first try, doubling up to 30 min; the 10th failed try is the last.
RETRIES = Backoff(first_s=5, max_s=1800, tries=10)
MAX_ATTEMPTS = RETRIES.tries

_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Outcome:
    """What processing an event found out. `retry`: the worker should try again
    (router unreachable, a leg failed); `legs`: leg name -> recorded|duplicate|failed."""

    log_id: int
    status: str
    decision: str | None = None
    utm_source: str | None = None
    utm_campaign: str | None = None
    error_message: str | None = None
    retry: bool = False
    legs: dict[str, str] = field(default_factory=dict)
    awaiting_lead_data: bool = False
    # Why the router decided so: {"reason", "referral_code", "targetologist"}.
    route: dict[str, str] | None = None


@dataclass(frozen=True)
class LogState:
    """What the rule reads of a log before an outcome is recorded."""

    received_at: datetime
    attempts: int = 0
    attempt_started_at: datetime | None = None
    legs: dict[str, str] | None = None
    routing_decision: str | None = None
    utm_source: str | None = None
    utm_campaign: str | None = None
    route: dict[str, str] | None = None


@dataclass(frozen=True)
class NextState:
    """The log after an outcome (`log`: its new column values) and the attempt row
    that records the outcome (`attempt`: webhook_attempts columns, log_id aside)."""

    log: dict[str, Any]
    attempt: dict[str, Any]


def retry_delay(attempts: int) -> timedelta:
    """How long an event that has failed `attempts` tries waits for the next."""
    return timedelta(seconds=RETRIES.delay_s(attempts))


def gives_up(attempts: int) -> bool:
    """True when an event that has had `attempts` tries gets no further one."""
    return RETRIES.gives_up(attempts)


def next_state(before: LogState, out: Outcome, finished: datetime) -> NextState:
    """The log `before` once `out`, finished at `finished`, is recorded.

    The attempt count goes up by one. A retry is scheduled after the backoff unless
    that was the last allowed try: then the event is given up and its error says so.
    The legs of earlier attempts are kept, this attempt's replace them by name. An
    outcome that decides nothing keeps the decision, UTM and reason found before."""
    attempts = before.attempts + 1
    retry = out.retry and not gives_up(attempts)
    error = out.error_message
    if out.retry and not retry:
        error = " ".join(filter(None, [error, f"(gave up after {attempts} attempts)"]))
    decided = out.decision is not None
    started = before.attempt_started_at or before.received_at
    return NextState(
        log={
            "attempts": attempts,
            "processing_status": out.status,
            "error_message": error,
            "legs": {**(before.legs or {}), **out.legs} or None,
            "retry_at": finished + retry_delay(attempts) if retry else None,
            "processed_at": finished,
            "processing_ms": (finished - before.received_at) // _MS,
            "awaiting_lead_data": out.awaiting_lead_data,
            "routing_decision": out.decision if decided else before.routing_decision,
            "utm_source": out.utm_source if decided else before.utm_source,
            "utm_campaign": out.utm_campaign if decided else before.utm_campaign,
            "route": out.route if decided else before.route,
        },
        attempt={
            "attempt": attempts,
            "at": finished,
            "status": out.status,
            "routing_decision": out.decision,
            "error_message": error,
            "legs": out.legs or None,
            "duration_ms": max(0, (finished - started) // _MS),
        },
    )
