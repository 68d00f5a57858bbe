"""The one backoff rule: delays double from the first up to the cap, no jitter,
and a schedule says when to give up."""

import pytest

from amoroute.backoff import Backoff
from edge.amocrm_api import RETRIES as AMOCRM_RETRIES
from edge.event_lifecycle import RETRIES as EVENT_RETRIES
from notifier_svc.outbox import RETRIES as NOTIFY_RETRIES


@pytest.mark.parametrize(
    ("failed", "delay_s"),
    [(0, 5), (1, 5), (2, 10), (3, 20), (9, 1280), (10, 1800), (11, 1800), (10**6, 1800)],
)
def test_delay_doubles_from_the_first_and_stops_at_the_cap(failed: int, delay_s: float) -> None:
    assert Backoff(first_s=5, max_s=1800, tries=10).delay_s(failed) == delay_s


@pytest.mark.parametrize(
    ("tried", "gives_up"), [(0, False), (1, False), (9, False), (10, True), (11, True)]
)
def test_gives_up_once_every_allowed_try_is_used(tried: int, gives_up: bool) -> None:
    assert Backoff(first_s=5, max_s=1800, tries=10).gives_up(tried) is gives_up


@pytest.mark.parametrize(
    ("schedule", "delays", "tries"),
    [
        # webhook_logs events: 5 s doubling to 30 min, ten tries
        (EVENT_RETRIES, [5, 10, 20, 40, 80, 160, 320, 640, 1280], 10),
        # Telegram notifications: 2 s doubling to 10 min, eight tries
        (NOTIFY_RETRIES, [2, 4, 8, 16, 32, 64, 128], 8),
        # AmoCRM API calls: 1 s doubling to 30 s, the first call and four retries
        (AMOCRM_RETRIES, [1, 2, 4, 8], 5),
    ],
    ids=["events", "notifications", "amocrm"],
)
def test_each_retry_keeps_its_schedule(schedule: Backoff, delays: list[float], tries: int) -> None:
    assert [schedule.delay_s(n) for n in range(1, tries)] == delays
    assert schedule.tries == tries
    assert schedule.delay_s(40) == schedule.max_s


@pytest.mark.parametrize(
    "arguments", [{"first_s": -1, "max_s": 1, "tries": 1}, {"first_s": 1, "max_s": 1, "tries": 0}]
)
def test_a_schedule_that_cannot_be_kept_is_refused(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**arguments)  # type: ignore[arg-type]
