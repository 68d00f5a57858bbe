"""The daily summary's figures and text (HTML parse mode). Pure: no I/O.

A summary sent on local day D at the configured time covers the 24 hours before
it, [D-1 at, D at) in the configured time zone: with 00:00 that is the calendar
day before, and whatever the time each sale falls in exactly one summary.
Figures count credited sales only: a sale reversed (the deal left the won
status) or re-attributed to someone else is left out.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from notifier_svc.message import MAX_FIELD_LEN, MAX_MESSAGE_LEN, escape_within, one_line, units
from notifier_svc.message import format_amount as _amount

# Campaigns listed per targetologist, biggest revenue first.
TOP_CAMPAIGNS = 5
# How late a summary may still go out (a replica down at the send time, a
# restart): later than this it is skipped, so switching the summary on, or
# starting after a long outage, never sends an old day's figures.
CATCH_UP = timedelta(hours=3)


@dataclass(frozen=True)
class Window:
    """The period one summary covers: [start, end), aware datetimes in its zone."""

    day: date
    start: datetime
    end: datetime
    zone: str


def due_day(at_utc: datetime, send_at: time, zone: ZoneInfo) -> date | None:
    """The local day whose summary is due at `at_utc`: the day whose send time
    came at most CATCH_UP before; None between those windows."""
    local = at_utc.astimezone(zone)
    for day in (local.date(), local.date() - timedelta(days=1)):
        sent = datetime.combine(day, send_at, tzinfo=zone)
        if sent <= at_utc < sent + CATCH_UP:
            return day
    return None


def window(day: date, send_at: time, zone: ZoneInfo) -> Window:
    """The 24 hours (local clock; a DST day is 23 or 25 real hours) the summary
    of `day` covers: from the send time the day before to the send time of `day`."""
    end = datetime.combine(day, send_at, tzinfo=zone)
    start = datetime.combine(day - timedelta(days=1), send_at, tzinfo=zone)
    return Window(day, start, end, zone.key)


@dataclass(frozen=True)
class SaleFigure:
    """What the summary needs of one traffic sale."""

    targetologist: str
    amount: int
    campaign: str
    # Reversed, or re-attributed to someone else: not counted.
    reversed: bool = False


@dataclass(frozen=True)
class CampaignDay:
    campaign: str
    sales: int
    revenue: int


@dataclass(frozen=True)
class TargetologistDay:
    name: str
    sales: int = 0
    revenue: int = 0
    # Biggest revenue first, at most TOP_CAMPAIGNS.
    campaigns: tuple[CampaignDay, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ReferralDay:
    code: str
    conversions: int
    amount: int


def tally(sales: Iterable[SaleFigure]) -> dict[str, TargetologistDay]:
    """Credited sales and revenue per targetologist (keyed by the lower-cased name),
    with their top campaigns; reversed sales are left out."""
    people: dict[str, tuple[str, int, int, dict[str, list[int]]]] = {}
    for sale in sales:
        if sale.reversed:
            continue
        key = sale.targetologist.lower()
        name, count, revenue, campaigns = people.get(key, (sale.targetologist, 0, 0, {}))
        figures = campaigns.setdefault(sale.campaign, [0, 0])
        figures[0] += 1
        figures[1] += sale.amount
        people[key] = (name, count + 1, revenue + sale.amount, campaigns)
    result = {}
    for key, (name, count, revenue, campaigns) in people.items():
        top = sorted(campaigns.items(), key=lambda c: (-c[1][1], -c[1][0], c[0]))
        result[key] = TargetologistDay(
            name,
            count,
            revenue,
            tuple(CampaignDay(c, n, r) for c, (n, r) in top[:TOP_CAMPAIGNS]),
        )
    return result


def _text(value: str) -> str:
    return escape_within(one_line(value), MAX_FIELD_LEN) or "—"


def _period(w: Window) -> str:
    return f"{w.start:%d.%m.%Y %H:%M} — {w.end:%d.%m.%Y %H:%M} ({_text(w.zone)})"


def _figures(count: int, revenue: int, currency: str) -> str:
    return f"{count} · {_amount(revenue, currency)}"


def _person_block(person: TargetologistDay, currency: str) -> str:
    lines = [f"<b>{_text(person.name)}</b>"]
    if not person.sales:
        lines.append("Продаж нет")
        return "\n".join(lines)
    lines.append(f"Продаж: {person.sales} · Выручка: {_amount(person.revenue, currency)}")
    lines.append("Топ кампаний:")
    for number, c in enumerate(person.campaigns, start=1):
        lines.append(f"{number}. {_text(c.campaign)} — {_figures(c.sales, c.revenue, currency)}")
    return "\n".join(lines)


def render_chat_summary(w: Window, people: list[TargetologistDay], currency: str) -> list[str]:
    """A targetologist chat's summary: for each targetologist of the chat (in the
    rules' order) the sales, revenue and top campaigns of the period; messages of
    at most 4,096 units, a targetologist never split across two."""
    header = f"📊 <b>Итоги за сутки</b>\n{_period(w)}"
    return pack(header, [_person_block(p, currency) for p in people])


def render_default_summary(
    w: Window, people: list[TargetologistDay], referrals: list[ReferralDay], currency: str
) -> list[str]:
    """The default chat's summary: the period's totals, then each targetologist's
    and each referral code's sales and amount, biggest first."""
    total_sales = sum(p.sales for p in people)
    total_revenue = sum(p.revenue for p in people)
    referred = _figures(
        sum(r.conversions for r in referrals), sum(r.amount for r in referrals), currency
    )
    header = (
        f"📊 <b>Итоги за сутки: все продажи</b>\n{_period(w)}\n"
        f"<b>С трафика:</b> {_figures(total_sales, total_revenue, currency)}\n"
        f"<b>По реферальным кодам:</b> {referred}"
    )
    blocks = ["<b>Таргетологи:</b>"]
    ranked = sorted(people, key=lambda p: (-p.revenue, -p.sales, p.name.lower()))
    blocks += [f"• {_text(p.name)} — {_figures(p.sales, p.revenue, currency)}" for p in ranked]
    if not ranked:
        blocks.append("Продаж нет")
    blocks.append("<b>Реферальные коды:</b>")
    codes = sorted(referrals, key=lambda r: (-r.amount, -r.conversions, r.code))
    blocks += [f"• {_text(r.code)} — {_figures(r.conversions, r.amount, currency)}" for r in codes]
    if not codes:
        blocks.append("Продаж нет")
    return pack(header, blocks, separator="\n")


def pack(
    header: str, blocks: list[str], limit: int = MAX_MESSAGE_LEN, separator: str = "\n\n"
) -> list[str]:
    """`header` then the blocks, in order, as messages of at most `limit` units:
    as many whole blocks as fit in each; a message after the first starts with the
    header's first line marked as a continuation. A block too long for any message
    on its own is cut (it never is at Telegram's limit: every field is bounded)."""
    continued = f"{header.splitlines()[0]} (продолжение)"
    messages: list[str] = []
    current = header
    for block in blocks:
        if units(current) + units(separator) + units(block) <= limit:
            current = f"{current}{separator}{block}"
            continue
        messages.append(current)
        room = limit - units(continued) - units(separator)
        if units(block) > room:
            block = _cut(block, room)
        current = f"{continued}{separator}{block}"
    messages.append(current)
    return messages


def _cut(block: str, room: int) -> str:
    # Whole lines while they fit: a cut never falls inside a tag or an escape.
    kept: list[str] = []
    for line in block.splitlines():
        if units("\n".join([*kept, line, "…"])) > room:
            break
        kept.append(line)
    return "\n".join([*kept, "…"])
