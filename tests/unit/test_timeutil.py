"""Timestamps and datetimes convert both ways without losing a microsecond."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from amoroute.timeutil import to_datetime, to_timestamp

MOMENTS = [
    datetime(2026, 11, 25, 4, 5, 6, 789012, tzinfo=UTC),
    datetime(2026, 5, 1, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=5))),
    datetime(2026, 5, 1, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
    datetime(2026, 1, 1),  # naive: read as UTC, as SQLite hands them back
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1960, 5, 1, 3, 4, 5, 1, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=1),
]


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_to_timestamp_matches_protobufs_own_conversion(moment: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    assert to_timestamp(moment) == expected


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_a_moment_survives_the_round_trip(moment: datetime) -> None:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    assert to_datetime(to_timestamp(moment)) == aware  # type: ignore[arg-type]


def test_none_stays_unset() -> None:
    assert to_timestamp(None) is None
