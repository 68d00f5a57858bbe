"""The webhook flow over time, pure: which windows the chart offers, their buckets
(one point per interval, empty ones included), the buckets old enough to keep once
computed, and the interpolated percentile PostgreSQL's percentile_cont computes, for
the stores that compute it in Python."""

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from edge.event_lifecycle import STATUSES

# Window -> bucket width: about 24-60 points each, so a phone-width chart stays readable.
WINDOWS: dict[str, timedelta] = {
    "1h": timedelta(minutes=1),
    "24h": timedelta(hours=1),
    "7d": timedelta(hours=6),
    "30d": timedelta(days=1),
}
_LENGTHS = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# An event's retries end about 75 minutes after it arrives (event_lifecycle.RETRIES),
# so a bucket that ended this long ago no longer changes.
FROZEN_AFTER = timedelta(hours=3)


@dataclass(frozen=True)
class Buckets:
    """`count` intervals of `step` from `start`, aligned on multiples of `step` since
    the Unix epoch (UTC), the last one holding `moment`."""

    start: datetime
    step: timedelta
    count: int

    @property
    def end(self) -> datetime:
        return self.start + self.step * self.count

    def index(self, moment: datetime) -> int:
        """Which bucket holds `moment` (it must lie in [start, end))."""
        return (moment - self.start) // self.step

    def starts(self) -> list[datetime]:
        return [self.start + self.step * i for i in range(self.count)]


def buckets_for(window: str, moment: datetime) -> Buckets:
    """The buckets of `window` ending with the one that holds `moment`. KeyError for a
    window not in WINDOWS."""
    step = WINDOWS[window]
    count = _LENGTHS[window] // step
    current = _EPOCH + ((moment - _EPOCH) // step) * step
    return Buckets(current - step * (count - 1), step, count)


@dataclass
class Bucket:
    """One interval's events: counts by processing status, and the processing times of
    those that finished (or their percentiles, when the database computed them)."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    p50_ms: float | None = None
    p95_ms: float | None = None


def percentile_cont(ordered: Sequence[float], fraction: float) -> float | None:
    """The `fraction` percentile of `ordered` (sorted) by linear interpolation between
    the closest ranks, as PostgreSQL's percentile_cont; None for no values."""
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class BucketShelf(Protocol):
    """Where frozen buckets outlive a process: every replica and restart reads them."""

    def load(self, step: timedelta, starts: list[datetime]) -> dict[datetime, Bucket]:
        """The stored buckets among `starts`, by start."""
        ...

    def save(self, step: timedelta, buckets: list[tuple[datetime, Bucket]]) -> None:
        """Store these frozen buckets (one already stored stays as it is)."""
        ...

    def forget_before(self, step: timedelta, start: datetime) -> None:
        """Drop the stored buckets of `step` that start before `start`."""
        ...


class FrozenBuckets:
    """The buckets that ended FROZEN_AFTER ago, each computed once and kept while a
    window shows it (in this process, and on `shelf` for the others and the next
    start): a 30d chart then reads only its newest day. A bucket's counts stay as
    computed even if retention deletes its events later, until it leaves the window."""

    def __init__(self, shelf: BucketShelf | None = None) -> None:
        self.shelf = shelf
        self._known: dict[tuple[timedelta, datetime], Bucket] = {}
        self._lock = threading.Lock()

    def series(
        self, buckets: Buckets, moment: datetime, compute: Callable[[Buckets], list[Bucket]]
    ) -> list[Bucket]:
        """Every bucket of `buckets`: the kept ones as kept, from the first one not
        kept to the end by `compute`."""
        step, starts = buckets.step, buckets.starts()
        with self._lock:
            known = [self._known.get((step, start)) for start in starts]
        first = _first_missing(known)
        if first < buckets.count and self.shelf is not None:
            stored = self.shelf.load(step, starts[first:])
            for i in range(first, buckets.count):
                known[i] = stored.get(starts[i])
            first = _first_missing(known)
        fresh = (
            compute(Buckets(starts[first], step, buckets.count - first))
            if first < buckets.count
            else []
        )
        frozen_before = moment - FROZEN_AFTER
        newly_frozen = [
            (start, bucket)
            for start, bucket in zip(starts[first:], fresh, strict=True)
            if start + step <= frozen_before
        ]
        if newly_frozen and self.shelf is not None:
            self.shelf.save(step, newly_frozen)
            self.shelf.forget_before(step, buckets.start)
        kept = [bucket for bucket in known[:first] if bucket is not None]  # all of them
        with self._lock:
            for start, bucket in [*zip(starts[:first], kept, strict=True), *newly_frozen]:
                self._known[(step, start)] = bucket
            for key in [k for k in self._known if k[0] == step and k[1] < buckets.start]:
                del self._known[key]
        return kept + fresh


def _first_missing(known: list[Bucket | None]) -> int:
    return next((i for i, bucket in enumerate(known) if bucket is None), len(known))
