"""The daily summary's period, figures and text (notifier_svc.summary): pure."""

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from notifier_svc.message import MAX_MESSAGE_LEN
from notifier_svc.summary import (
    TOP_CAMPAIGNS,
    ReferralDay,
    SaleFigure,
    TargetologistDay,
    due_day,
    pack,
    render_chat_summary,
    render_default_summary,
    tally,
    window,
)

ALMATY = ZoneInfo("Asia/Almaty")  # UTC+5, no daylight saving time
AT = time(21, 0)
PERIOD = window(date(2026, 12, 3), AT, ALMATY)


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_the_summary_of_a_day_is_due_from_its_local_send_time_for_a_few_hours() -> None:
    # 21:00 in Almaty is 16:00 UTC.
    assert due_day(datetime(2026, 12, 3, 15, 59, tzinfo=UTC), AT, ALMATY) is None
    assert due_day(datetime(2026, 12, 3, 16, 0, tzinfo=UTC), AT, ALMATY) == date(2026, 12, 3)
    # Past local midnight, within CATCH_UP: still the 3rd's summary.
    assert due_day(datetime(2026, 12, 3, 18, 59, tzinfo=UTC), AT, ALMATY) == date(2026, 12, 3)
    assert due_day(datetime(2026, 12, 3, 19, 0, tzinfo=UTC), AT, ALMATY) is None
    # 23:30 in Almaty: the day's summary is due just after local midnight.
    late = time(23, 30)
    assert due_day(datetime(2026, 12, 3, 19, 0, tzinfo=UTC), late, ALMATY) == date(2026, 12, 3)


def test_a_summary_covers_the_24_hours_before_its_send_time_in_local_time() -> None:
    assert PERIOD.start == datetime(2026, 12, 2, 16, 0, tzinfo=UTC)
    assert PERIOD.end == datetime(2026, 12, 3, 16, 0, tzinfo=UTC)
    # At 00:00 the period is the calendar day before.
    midnight = window(date(2026, 12, 3), time(0, 0), ALMATY)
    assert (midnight.start, midnight.end) == (
        datetime(2026, 12, 1, 19, 0, tzinfo=UTC),
        datetime(2026, 12, 2, 19, 0, tzinfo=UTC),
    )


def test_a_daylight_saving_day_keeps_the_local_send_time() -> None:
    berlin = ZoneInfo("Europe/Berlin")  # 29 March 2026: clocks go forward at 02:00
    period = window(date(2026, 3, 29), time(21, 0), berlin)
    # 21:00 CET the day before to 21:00 CEST: 23 real hours.
    assert period.start.astimezone(UTC) == datetime(2026, 3, 28, 20, tzinfo=UTC)
    assert period.end.astimezone(UTC) == datetime(2026, 3, 29, 19, tzinfo=UTC)


def test_tally_counts_credited_sales_only_with_the_top_campaigns() -> None:
    sales = [
        SaleFigure("Kenesary", 100_000, "tp_june"),
        SaleFigure("kenesary", 50_000, "tp_june"),
        SaleFigure("Kenesary", 300_000, "black_friday"),
        SaleFigure("Kenesary", 999_000, "tp_june", reversed=True),
        SaleFigure("Aidana", 70_000, ""),
    ] + [SaleFigure("Kenesary", 1_000, f"small_{n}") for n in range(10)]
    people = tally(sales)
    kenesary = people["kenesary"]
    assert (kenesary.sales, kenesary.revenue) == (13, 460_000)
    assert [c.campaign for c in kenesary.campaigns][:2] == ["black_friday", "tp_june"]
    assert (kenesary.campaigns[1].sales, kenesary.campaigns[1].revenue) == (2, 150_000)
    assert len(kenesary.campaigns) == TOP_CAMPAIGNS
    assert (people["aidana"].sales, people["aidana"].revenue) == (1, 70_000)


def test_chat_summary_names_sales_revenue_and_campaigns_in_cyrillic_with_the_currency() -> None:
    people = tally(
        [
            SaleFigure("Kenesary", 150_000, "tp_june"),
            SaleFigure("Kenesary", 300_000, "<b>fake</b>"),
        ]
    )
    [text] = render_chat_summary(PERIOD, [people["kenesary"], TargetologistDay("Aidana")], "KZT")
    assert text.startswith("📊 <b>Итоги за сутки</b>\n02.12.2026 21:00 — 03.12.2026 21:00")
    assert "(Asia/Almaty)" in text
    assert "<b>Kenesary</b>\nПродаж: 2 · Выручка: 450\u202f000 ₸" in text
    assert "1. &lt;b&gt;fake&lt;/b&gt; — 1 · 300\u202f000 ₸" in text
    assert "2. tp_june — 1 · 150\u202f000 ₸" in text
    assert "<b>Aidana</b>\nПродаж нет" in text


def test_default_summary_has_totals_per_targetologist_and_referral_code() -> None:
    people = tally([SaleFigure("Kenesary", 150_000, "a"), SaleFigure("Aidana", 90_000, "b")])
    referrals = [ReferralDay("TEST123", 2, 80_000), ReferralDay("ABC", 1, 100_000)]
    [text] = render_default_summary(PERIOD, list(people.values()), referrals, "USD")
    assert "<b>С трафика:</b> 2 · 240\u202f000 USD" in text
    assert "<b>По реферальным кодам:</b> 3 · 180\u202f000 USD" in text
    assert text.index("• Kenesary — 1 · 150\u202f000 USD") < text.index("• Aidana")
    assert text.index("• ABC — 1 · 100\u202f000 USD") < text.index("• TEST123 — 2")


def test_an_empty_day_says_there_were_no_sales() -> None:
    [text] = render_default_summary(PERIOD, [], [], "KZT")
    assert "<b>С трафика:</b> 0 · 0 ₸" in text
    assert text.count("Продаж нет") == 2


def test_a_long_summary_is_split_at_4096_units_never_inside_an_entry() -> None:
    people = [TargetologistDay(f"Таргетолог {n:03}", n, n * 1000) for n in range(400)]
    referrals = [ReferralDay(f"CODE{n:04}", 1, 5000) for n in range(300)]
    parts = render_default_summary(PERIOD, people, referrals, "KZT")
    assert len(parts) > 2
    assert all(_units(p) <= MAX_MESSAGE_LEN for p in parts)
    assert all(p.startswith("📊 <b>Итоги за сутки: все продажи</b>") for p in parts)
    assert all(p.endswith(" (продолжение)") is False for p in parts)
    joined = "\n".join(parts)
    assert all(f"• Таргетолог {n:03} — " in joined for n in range(1, 400))
    assert all(f"• CODE{n:04} — 1 · 5\u202f000 ₸" in joined for n in range(300))


def test_pack_cuts_only_a_block_longer_than_a_message_on_whole_lines() -> None:
    block = "\n".join(f"строка {n}" for n in range(2000))
    parts = pack("Заголовок", ["коротко", block], limit=200)
    assert parts[0] == "Заголовок\n\nкоротко"
    assert parts[1].startswith("Заголовок (продолжение)\n\nстрока 0\n")
    assert parts[1].endswith("\n…") and _units(parts[1]) <= 200
