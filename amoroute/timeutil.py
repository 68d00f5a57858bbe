"""Conversions between protobuf Timestamps and timezone-aware datetimes."""

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc(dt: datetime) -> datetime:
    """`dt` as an aware UTC datetime (SQLite hands naive ones back)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def to_datetime(ts: Timestamp) -> datetime | None:
    """None for an unset (zero) timestamp."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=UTC)


def to_timestamp(dt: datetime | None) -> Timestamp | None:
    """None for None, so a message built with it leaves the field unset."""
    if dt is None:
        return None
    # What Timestamp.FromDatetime does, in a third of its time (every
    # recorded sale and notification is answered with its timestamps).
    since = utc(dt) - _EPOCH
    return Timestamp(seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1_000)


def now() -> datetime:
    return datetime.now(UTC)
