"""Conversions between protobuf Timestamps and timezone-aware datetimes.

Every moment amoroute accepts lies in one range, checked where a value enters
(a request's Timestamp, an admin query's date): from the Unix epoch to the last
microsecond of year 9999, in UTC. Python's datetime ends with year 9999, so a
moment beyond it cannot even be converted to UTC; one before 1970 is no AmoCRM
deal's, and its Timestamp would overlap the zero that means "unset". Inside the
range every value is storable in PostgreSQL's timestamptz and SQLite alike.
"""

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from amoroute.errors import InvalidArgument

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EARLIEST = _EPOCH
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
RANGE = "from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z"
_LATEST_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
_MAX_NANOS = 999_999_999


def utc(dt: datetime) -> datetime:
    """`dt` as an aware UTC datetime (SQLite hands naive ones back)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def in_range(field: str, moment: datetime) -> datetime:
    """`moment` in UTC (naive read as UTC), or InvalidArgument naming `field` when it
    lies outside RANGE once in UTC."""
    # A difference of aware datetimes never overflows, where astimezone() near
    # year 1 or 9999 would.
    since = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) - _EPOCH
    if not timedelta(0) <= since <= LATEST - _EPOCH:
        raise InvalidArgument(field, f"must be a time {RANGE} (in UTC), got {moment.isoformat()}")
    return _EPOCH + since


def to_datetime(field: str, ts: Timestamp) -> datetime | None:
    """A request's Timestamp as an aware UTC datetime; None when unset (zero).
    InvalidArgument naming `field` for nanos outside 0..999999999 or a time outside RANGE."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    if not 0 <= ts.nanos <= _MAX_NANOS:
        raise InvalidArgument(
            f"{field}.nanos", f"must be from 0 to {_MAX_NANOS}, got {ts.nanos}"
        )
    if not 0 <= ts.seconds <= _LATEST_SECONDS:
        raise InvalidArgument(
            field, f"must be a time {RANGE}, got {ts.seconds} seconds since the epoch"
        )
    return ts.ToDatetime(tzinfo=UTC)


def to_timestamp(dt: datetime | None) -> Timestamp | None:
    """`dt` (naive read as UTC) as a Timestamp; None for None, so a message built
    with it leaves the field unset."""
    if dt is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(dt)
    return ts


def now() -> datetime:
    return datetime.now(UTC)
