"""Timestamps and datetimes convert both ways without losing a microsecond, inside the one
range of times amoroute accepts; outside it, InvalidArgument names the field."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from amoroute.errors import InvalidArgument
from amoroute.timeutil import LATEST, RANGE, in_range, to_datetime, to_timestamp

IN_RANGE = [
    datetime(2026, 11, 25, 4, 5, 6, 789012, tzinfo=UTC),
    datetime(2026, 5, 1, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=5))),
    datetime(2026, 5, 1, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
    datetime(2026, 1, 1),  # naive: read as UTC, as SQLite hands them back
    datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=1),
    LATEST,
]
MOMENTS = [
    *IN_RANGE,
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1960, 5, 1, 3, 4, 5, 1, tzinfo=UTC),
]


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_to_timestamp_matches_protobufs_own_conversion(moment: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    assert to_timestamp(moment) == expected


@pytest.mark.parametrize("moment", IN_RANGE, ids=str)
def test_a_moment_survives_the_round_trip(moment: datetime) -> None:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    assert to_datetime("won_at", to_timestamp(moment)) == aware  # type: ignore[arg-type]
    assert in_range("from", moment) == aware


def test_none_stays_unset() -> None:
    assert to_timestamp(None) is None
    assert to_datetime("won_at", Timestamp()) is None


@pytest.mark.parametrize(
    ("seconds", "nanos", "field"),
    [
        (2**62, 0, "won_at"),
        (253_402_300_800, 0, "won_at"),  # 10000-01-01T00:00:00Z
        (-1, 0, "won_at"),
        (-62_135_596_800, 0, "won_at"),  # 0001-01-01T00:00:00Z
        (1_750_000_000, -5, "won_at.nanos"),
        (1_750_000_000, 2_000_000_000, "won_at.nanos"),
        (0, -5, "won_at.nanos"),
    ],
)
def test_a_timestamp_outside_the_range_names_the_field(seconds: int, nanos: int, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        to_datetime("won_at", Timestamp(seconds=seconds, nanos=nanos))
    assert err.value.field == field
    assert str(nanos if field.endswith("nanos") else seconds) in err.value.problem


@pytest.mark.parametrize(
    "moment",
    [
        datetime.fromisoformat("9999-12-31T23:59:59-01:00"),
        datetime.fromisoformat("0001-01-01T00:00:00+01:00"),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1970, 1, 1, 4, 59, tzinfo=timezone(timedelta(hours=5))),
    ],
    ids=str,
)
def test_a_datetime_outside_the_range_once_in_utc_names_the_field(moment: datetime) -> None:
    with pytest.raises(InvalidArgument) as err:
        in_range("received_from", moment)
    assert str(err.value).startswith(f"received_from: must be a time {RANGE}")
