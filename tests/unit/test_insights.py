"""The flow chart's buckets, percentiles and kept buckets, and CSV cells: pure, by tables."""

from datetime import UTC, datetime, timedelta

import pytest

from edge.csv_export import cell, csv_chunks
from edge.flow_series import (
    FROZEN_AFTER,
    Bucket,
    Buckets,
    FrozenBuckets,
    buckets_for,
    percentile_cont,
)

MOMENT = datetime(2026, 3, 10, 14, 37, 12, tzinfo=UTC)


@pytest.mark.parametrize(("window", "first", "count", "step"), [
    ("1h", datetime(2026, 3, 10, 13, 38, tzinfo=UTC), 60, timedelta(minutes=1)),
    ("24h", datetime(2026, 3, 9, 15, tzinfo=UTC), 24, timedelta(hours=1)),
    ("7d", datetime(2026, 3, 3, 18, tzinfo=UTC), 28, timedelta(hours=6)),
    ("30d", datetime(2026, 2, 9, tzinfo=UTC), 30, timedelta(days=1)),
])
def test_buckets_are_aligned_and_end_with_the_one_holding_now(
    window: str, first: datetime, count: int, step: timedelta
) -> None:
    buckets = buckets_for(window, MOMENT)
    assert (buckets.start, buckets.count, buckets.step) == (first, count, step)
    last = buckets.starts()[-1]
    assert last <= MOMENT < last + step == buckets.end
    assert buckets.index(MOMENT) == count - 1 and buckets.index(first) == 0


@pytest.mark.parametrize(("values", "fraction", "expected"), [
    ([], 0.5, None),
    ([7], 0.95, 7),
    ([10, 20], 0.5, 15),
    ([10, 20, 30, 50, 400], 0.95, 330),
    ([1, 2, 3, 4], 0.5, 2.5),
])
def test_percentile_interpolates_as_postgresql_percentile_cont(
    values: list[int], fraction: float, expected: float | None
) -> None:
    assert percentile_cont(values, fraction) == (None if expected is None
                                                 else pytest.approx(expected))


def test_buckets_past_their_retries_are_computed_once() -> None:
    frozen = FrozenBuckets()
    asked: list[tuple[datetime, int]] = []

    def compute(buckets: Buckets) -> list[Bucket]:
        asked.append((buckets.start, buckets.count))
        return [Bucket() for _ in range(buckets.count)]

    first = buckets_for("24h", MOMENT)
    assert len(frozen.series(first, MOMENT, compute)) == 24
    # Later the same hour: only the buckets that ended within FROZEN_AFTER are read again.
    later = MOMENT + timedelta(minutes=10)
    assert len(frozen.series(buckets_for("24h", later), later, compute)) == 24
    fresh_from = first.end - timedelta(hours=4)  # the 3 h before the current hour, and it
    assert asked == [(first.start, 24), (fresh_from, 4)]
    assert FROZEN_AFTER == timedelta(hours=3)
    # An hour on, the window moves: the hour that left it is forgotten, and the one that
    # ended 3 h ago now is read one last time.
    next_hour = MOMENT + timedelta(hours=1)
    assert len(frozen.series(buckets_for("24h", next_hour), next_hour, compute)) == 24
    assert asked[-1] == (fresh_from, 5)


@pytest.mark.parametrize(("value", "expected"), [
    (None, ""), (True, "true"), (42, 42), (-5, -5), (1.5, 1.5),
    ("=1+2", "'=1+2"), ("+7 701", "'+7 701"), ("-camp", "'-camp"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("Сделка", "Сделка"), ("a=b", "a=b"),
    (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05+00:00"),
])
def test_csv_cells_defuse_formulas_and_keep_numbers(value: object, expected: object) -> None:
    assert cell(value) == expected


def test_csv_starts_with_the_bom_and_the_header_then_a_chunk_per_page() -> None:
    chunks = list(csv_chunks(["id", "name"], [[[1, "Алия"]], [], [[2, "=x"]]]))
    assert chunks == ["\ufeffid,name\r\n".encode(), "1,Алия\r\n".encode(), b"2,'=x\r\n"]
