"""One table of webhook_logs states and outcomes, fed through the lifecycle rule in
Python (tests/unit/test_event_lifecycle.py) and through the store on a real
database (tests/edge/test_event_lifecycle_parity.py)."""

from datetime import UTC, datetime, timedelta

from edge.event_lifecycle import ERROR, MAX_ATTEMPTS, PARTIAL, PENDING, SUCCESS, LogState, Outcome

# Recent: processing_ms is a 32-bit column, which an outcome recorded weeks after
# receipt would overflow.
RECEIVED = datetime.now(UTC).replace(microsecond=123_987) - timedelta(minutes=10)
STARTED = RECEIVED + timedelta(seconds=41, microseconds=555)
LEGS_SO_FAR = {"referral": "recorded", "traffic": "failed"}
WHY = {"reason": "utm_source 'kenesary_x' matched Kenesary pattern 'kenesary_*'",
       "targetologist": "Kenesary"}

# name -> (the log before, the outcome; its log_id is set by whoever runs it)
CASES: dict[str, tuple[LogState, Outcome]] = {
    "first-try-succeeds": (
        LogState(RECEIVED),
        Outcome(0, SUCCESS, "both", "ref_a", "kenesary_x", legs={"referral": "recorded"}),
    ),
    "router-down-retries-and-keeps-decision": (
        LogState(RECEIVED, 1, STARTED, LEGS_SO_FAR, "both", "ref_a", "kenesary_x", WHY),
        Outcome(0, PENDING, error_message="router UNAVAILABLE: down", retry=True),
    ),
    "failed-leg-retried-later-attempt": (
        LogState(RECEIVED, 7, STARTED, LEGS_SO_FAR, "both", "ref_a", "kenesary_x"),
        Outcome(
            0, PARTIAL, "both", "ref_a", "kenesary_x", "traffic: down", True, {"traffic": "failed"}
        ),
    ),
    "later-legs-replace-earlier-by-name": (
        LogState(RECEIVED, 2, STARTED, LEGS_SO_FAR, "both", "ref_a", "kenesary_x"),
        Outcome(0, SUCCESS, legs={"traffic": "recorded"}),
    ),
    "new-decision-replaces-utm-even-with-none": (
        LogState(RECEIVED, 1, STARTED, None, "traffic", "kenesary_x", "june", WHY),
        Outcome(0, SUCCESS, "unknown", route={"reason": "no rule matched"}),
    ),
    "last-allowed-try-gives-up": (
        LogState(RECEIVED, MAX_ATTEMPTS - 1, STARTED, LEGS_SO_FAR, "both", "ref_a", None),
        Outcome(0, PARTIAL, error_message="traffic: down", retry=True, legs={"traffic": "failed"}),
    ),
    "gives-up-without-a-message": (
        LogState(RECEIVED, MAX_ATTEMPTS - 1),
        Outcome(0, PENDING, retry=True),
    ),
    "gives-up-with-an-empty-message": (
        LogState(RECEIVED, MAX_ATTEMPTS - 1),
        Outcome(0, PENDING, error_message="", retry=True),
    ),
    "past-the-limit-still-given-up": (
        LogState(RECEIVED, MAX_ATTEMPTS + 20),
        Outcome(0, ERROR, error_message="x", retry=True),
    ),
    "awaiting-lead-data-retries": (
        LogState(RECEIVED, 0, None),
        Outcome(0, PENDING, error_message="AmoCRM 503", retry=True, awaiting_lead_data=True),
    ),
    "final-error-no-retry": (
        LogState(RECEIVED, 3, STARTED, None, "referral", "ref_b", None),
        Outcome(0, ERROR, error_message="deal data unreadable"),
    ),
}
