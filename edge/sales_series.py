"""Sales per local day: the figures behind the sales charts, tallied from the credits
a service lists (pure: no gRPC, no falcon)."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

# The figures of a series row and of the totals: credited ones, and reversed ones apart.
FIGURES = ("sales", "revenue", "reversed_sales", "reversed_revenue")


@dataclass(frozen=True)
class Credit:
    """One credited sale as the chart needs it."""

    owner: str  # the targetologist, or the referral code
    amount: int
    won_at: datetime  # aware
    # Reversed (the deal left the won status) or re-attributed: counted apart.
    reversed: bool


def local_days(since: datetime, until: datetime, zone: ZoneInfo) -> list[date]:
    """The local days that [since, until) touches, in order."""
    first = since.astimezone(zone).date()
    last = (until - timedelta(microseconds=1)).astimezone(zone).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def daily_series(
    credits: Iterable[Credit], days: list[date], zone: ZoneInfo, owner_key: str
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One row per owner (named `owner_key` in it) with its credited sales and revenue
    per local day and its reversed ones in total, biggest revenue first; and the totals.
    Every credit must be won on one of `days`."""
    index = {day: n for n, day in enumerate(days)}
    rows: dict[str, dict[str, Any]] = {}
    for credit in credits:
        row = rows.setdefault(credit.owner, {
            owner_key: credit.owner, **dict.fromkeys(FIGURES, 0),
            "daily_revenue": [0] * len(days), "daily_sales": [0] * len(days),
        })
        if credit.reversed:
            row["reversed_sales"] += 1
            row["reversed_revenue"] += credit.amount
            continue
        day = index[credit.won_at.astimezone(zone).date()]
        row["sales"] += 1
        row["revenue"] += credit.amount
        row["daily_sales"][day] += 1
        row["daily_revenue"][day] += credit.amount
    series = sorted(rows.values(), key=lambda r: (-r["revenue"], r[owner_key]))
    totals = {key: sum(r[key] for r in series) for key in FIGURES}
    return series, totals
