"""How long webhook_logs keeps an event, and the months its partitions cover (pure).

An event is removed (with its attempts) once it is settled and older than the retention:
settled means no retry is waiting for it (`retry_at` NULL: it succeeded, failed for good,
or was given up). An event that did not end in success (error, partial, given up) is kept
for the longer error retention, so there is time to look into it. A pending event, or one
still being retried, is never removed, however old.

On PostgreSQL the table is partitioned by calendar month (UTC) of `received_at`: a month
is dropped whole once its last moment is older than the retention, so an event is kept
for the retention and at most one month more. edge/retention_store.py applies this."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# Months the worker keeps partitions ready for, after the current one.
MONTHS_AHEAD = 2
# The edge_checkpoints row by which one worker wins each retention run.
CHECKPOINT = "retention"


@dataclass(frozen=True)
class RetentionPolicy:
    """`days`: settled events older than this go; `error_days` (at least `days`): the
    same for events that did not end in success."""

    days: int
    error_days: int

    def cutoff(self, at: datetime) -> datetime:
        """Settled successful events received before this are removed."""
        return at - timedelta(days=self.days)

    def error_cutoff(self, at: datetime) -> datetime:
        """Settled events that did not end in success received before this are removed."""
        return at - timedelta(days=self.error_days)


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month in UTC: one partition of webhook_logs and of webhook_attempts."""

    year: int
    month: int

    @classmethod
    def of(cls, moment: datetime) -> "Month":
        moment = moment.astimezone(UTC)
        return cls(moment.year, moment.month)

    def plus(self, months: int) -> "Month":
        year, month = divmod(self.year * 12 + self.month - 1 + months, 12)
        return Month(year, month + 1)

    def months_after(self, other: "Month") -> int:
        """How many months `other` is before this one."""
        return (self.year - other.year) * 12 + self.month - other.month

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The next month's first moment (exclusive bound)."""
        return self.plus(1).start

    @property
    def suffix(self) -> str:
        """The partitions' name suffix: webhook_logs_p2026_12."""
        return f"p{self.year:04d}_{self.month:02d}"

    @classmethod
    def from_suffix(cls, suffix: str) -> "Month | None":
        """The month a partition's suffix names; None for anything else (the default)."""
        if len(suffix) != 8 or suffix[0] != "p" or suffix[5] != "_":
            return None
        year, month = suffix[1:5], suffix[6:8]
        if not (year.isdigit() and month.isdigit() and 1 <= int(month) <= 12):
            return None
        return cls(int(year), int(month))


def months_to_create(at: datetime) -> list[Month]:
    """The current month and MONTHS_AHEAD after it: partitions ready before rows come."""
    first = Month.of(at)
    return [first.plus(n) for n in range(MONTHS_AHEAD + 1)]


def months_to_drop(months: list[Month], policy: RetentionPolicy, at: datetime) -> list[Month]:
    """Of `months`, those wholly older than the retention (their rows still kept move
    out first)."""
    cutoff = policy.cutoff(at)
    return sorted(m for m in months if m.end <= cutoff)
