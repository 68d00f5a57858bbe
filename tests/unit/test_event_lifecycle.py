"""The webhook_logs event lifecycle as a table: what an outcome makes of a log."""

from datetime import timedelta

import pytest

from edge.event_lifecycle import MAX_ATTEMPTS, LogState, Outcome, gives_up, next_state, retry_delay
from tests.support.lifecycle_cases import CASES, RECEIVED, STARTED

FINISHED = STARTED + timedelta(seconds=2, microseconds=999)

# name -> attempts, status, error, legs, retry in s (None: no retry), decision, utm_source
EXPECTED = {
    "first-try-succeeds": (1, "success", None, {"referral": "recorded"}, None, "both", "ref_a"),
    "router-down-retries-and-keeps-decision": (
        2,
        "pending",
        "router UNAVAILABLE: down",
        {"referral": "recorded", "traffic": "failed"},
        10,
        "both",
        "ref_a",
    ),
    "failed-leg-retried-later-attempt": (
        8,
        "partial",
        "traffic: down",
        {"referral": "recorded", "traffic": "failed"},
        640,
        "both",
        "ref_a",
    ),
    "later-legs-replace-earlier-by-name": (
        3,
        "success",
        None,
        {"referral": "recorded", "traffic": "recorded"},
        None,
        "both",
        "ref_a",
    ),
    "new-decision-replaces-utm-even-with-none": (2, "success", None, None, None, "unknown", None),
    "last-allowed-try-gives-up": (
        MAX_ATTEMPTS,
        "partial",
        f"traffic: down (gave up after {MAX_ATTEMPTS} attempts)",
        {"referral": "recorded", "traffic": "failed"},
        None,
        "both",
        "ref_a",
    ),
    "gives-up-without-a-message": (
        MAX_ATTEMPTS,
        "pending",
        f"(gave up after {MAX_ATTEMPTS} attempts)",
        None,
        None,
        None,
        None,
    ),
    "gives-up-with-an-empty-message": (
        MAX_ATTEMPTS,
        "pending",
        f"(gave up after {MAX_ATTEMPTS} attempts)",
        None,
        None,
        None,
        None,
    ),
    "past-the-limit-still-given-up": (
        MAX_ATTEMPTS + 21,
        "error",
        f"x (gave up after {MAX_ATTEMPTS + 21} attempts)",
        None,
        None,
        None,
        None,
    ),
    "awaiting-lead-data-retries": (1, "pending", "AmoCRM 503", None, 5, None, None),
    "final-error-no-retry": (4, "error", "deal data unreadable", None, None, "referral", "ref_b"),
}


@pytest.mark.parametrize("name", CASES)
def test_an_outcome_moves_the_log_to_its_next_state(name: str) -> None:
    before, out = CASES[name]
    attempts, status, error, legs, retry_s, decision, utm_source = EXPECTED[name]
    state = next_state(before, out, FINISHED)
    log = state.log
    assert (log["attempts"], log["processing_status"], log["error_message"]) == (
        attempts,
        status,
        error,
    )
    assert log["legs"] == legs
    assert log["retry_at"] == (None if retry_s is None else FINISHED + timedelta(seconds=retry_s))
    assert (log["routing_decision"], log["utm_source"]) == (decision, utm_source)
    assert log["awaiting_lead_data"] is out.awaiting_lead_data
    assert log["processed_at"] == FINISHED
    assert state.attempt == {
        "attempt": attempts,
        "at": FINISHED,
        "status": status,
        "routing_decision": out.decision,
        "error_message": error,
        "legs": out.legs or None,
        "duration_ms": (FINISHED - (before.attempt_started_at or RECEIVED))
        // timedelta(milliseconds=1),
    }


def test_durations_are_whole_milliseconds_rounded_down_and_never_negative() -> None:
    before = LogState(RECEIVED, attempt_started_at=RECEIVED + timedelta(seconds=5))
    state = next_state(before, Outcome(1, "success"), RECEIVED + timedelta(microseconds=2_999))
    assert state.log["processing_ms"] == 2
    assert state.attempt["duration_ms"] == 0  # the attempt's start is after the finish
    early = next_state(
        LogState(RECEIVED), Outcome(1, "success"), RECEIVED - timedelta(microseconds=1)
    )
    assert early.log["processing_ms"] == -1


@pytest.mark.parametrize(
    ("attempts", "delay_s", "last"),
    [(1, 5, False), (2, 10, False), (5, 80, False), (9, 1280, False), (10, 1800, True)],
)
def test_events_back_off_from_five_seconds_to_half_an_hour_and_stop_at_ten(
    attempts: int, delay_s: int, last: bool
) -> None:
    assert retry_delay(attempts) == timedelta(seconds=delay_s)
    assert gives_up(attempts) is last


def test_the_reason_comes_with_a_decision_and_stays_through_an_outcome_without_one() -> None:
    why = {"reason": "utm_source 'kenesary_fb' matched Kenesary pattern 'kenesary_*'",
           "targetologist": "Kenesary"}
    routed = next_state(LogState(received_at=RECEIVED),
                        Outcome(1, "partial", decision="traffic", route=why), FINISHED)
    assert routed.log["route"] == why
    before = LogState(received_at=RECEIVED, attempts=1, routing_decision="traffic", route=why)
    down = next_state(before, Outcome(1, "pending", error_message="router down", retry=True),
                      FINISHED)
    assert (down.log["routing_decision"], down.log["route"]) == ("traffic", why)
    rerouted = next_state(before, Outcome(1, "success", decision="unknown",
                                          route={"reason": "no rule matched"}), FINISHED)
    assert rerouted.log["route"] == {"reason": "no rule matched"}
