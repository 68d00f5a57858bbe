"""The months webhook_logs is partitioned by, and which of them retention drops (pure)."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from edge.retention import Month, RetentionPolicy, months_to_create, months_to_drop
from edge.settings import Settings


@pytest.mark.parametrize(
    ("month", "plus", "expected"),
    [
        (Month(2026, 12), 1, Month(2027, 1)),
        (Month(2026, 11), 2, Month(2027, 1)),
        (Month(2027, 1), -1, Month(2026, 12)),
        (Month(2026, 3), 24, Month(2028, 3)),
    ],
)
def test_months_add_across_years(month: Month, plus: int, expected: Month) -> None:
    assert month.plus(plus) == expected


def test_a_month_spans_its_first_moment_to_the_next_months_in_utc() -> None:
    december = Month.of(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert (december.start, december.end) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert Month.from_suffix(december.suffix) == december == Month.from_suffix("p2026_12")


@pytest.mark.parametrize("suffix", ["default", "p2026_13", "p2026_00", "p26_12", "p2026-12"])
def test_other_partition_names_name_no_month(suffix: str) -> None:
    assert Month.from_suffix(suffix) is None


def test_partitions_are_made_for_this_month_and_two_ahead() -> None:
    assert months_to_create(datetime(2026, 12, 3, tzinfo=UTC)) == [
        Month(2026, 12), Month(2027, 1), Month(2027, 2)]


def test_a_month_is_dropped_once_its_last_moment_is_past_the_retention() -> None:
    policy = RetentionPolicy(days=90, error_days=180)
    months = [Month(2026, m) for m in range(1, 13)]
    # 90 days before 2026-06-30 is 2026-04-01: March has ended by then, April has not.
    assert months_to_drop(months, policy, datetime(2026, 6, 30, tzinfo=UTC)) == [
        Month(2026, 1), Month(2026, 2), Month(2026, 3)]


def test_errors_are_kept_at_least_as_long_as_the_rest() -> None:
    assert Settings().retention() == RetentionPolicy(days=90, error_days=180)
    with pytest.raises(ValidationError, match="WEBHOOK_LOG_ERROR_RETENTION_DAYS"):
        Settings(webhook_log_retention_days=200, webhook_log_error_retention_days=100)
