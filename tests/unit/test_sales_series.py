"""Sales per local day (edge.sales_series): days in the operator's zone, reversed apart."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from edge.sales_series import Credit, daily_series, local_days

ALMATY = ZoneInfo("Asia/Almaty")  # UTC+5


def test_local_days_are_those_the_range_touches_in_the_zone() -> None:
    since = datetime(2025, 3, 1, 19, tzinfo=UTC)  # 2025-03-02 00:00 in Almaty
    until = datetime(2025, 3, 3, 19, tzinfo=UTC)  # exclusive: 2025-03-04 00:00 there
    assert local_days(since, until, ALMATY) == [date(2025, 3, 2), date(2025, 3, 3)]
    assert local_days(since, until, ZoneInfo("UTC")) == [
        date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3)]


def test_series_sum_per_local_day_and_owner_with_reversed_apart_biggest_first() -> None:
    days = [date(2025, 3, 1), date(2025, 3, 2)]
    credits = [
        Credit("TEST42", 100, datetime(2025, 3, 1, 10, tzinfo=UTC), reversed=False),
        # 20:00 UTC on the 1st is the 2nd in Almaty.
        Credit("TEST42", 50, datetime(2025, 3, 1, 20, tzinfo=UTC), reversed=False),
        Credit("TEST42", 999, datetime(2025, 3, 1, 11, tzinfo=UTC), reversed=True),
        Credit("ABC", 500, datetime(2025, 3, 1, 12, tzinfo=UTC), reversed=False),
    ]
    series, totals = daily_series(credits, days, ALMATY, "referral_code")
    assert [row["referral_code"] for row in series] == ["ABC", "TEST42"]
    test42 = series[1]
    assert (test42["daily_revenue"], test42["daily_sales"]) == ([100, 50], [1, 1])
    assert (test42["sales"], test42["revenue"]) == (2, 150)
    assert (test42["reversed_sales"], test42["reversed_revenue"]) == (1, 999)
    assert totals == {"sales": 3, "revenue": 650, "reversed_sales": 1, "reversed_revenue": 999}


def test_no_credits_make_an_empty_series_with_zero_totals() -> None:
    series, totals = daily_series([], [date(2025, 3, 1)], ALMATY, "targetologist")
    assert series == [] and set(totals.values()) == {0}
