"""The text announcing a traffic sale in Telegram (HTML parse mode). Pure: no I/O.

Everything that comes from outside (deal name, UTM, names, the currency code)
is escaped; Telegram's HTML mode only needs <, > and & escaped in text.
"""

import html
import re

# Telegram rejects longer messages. Its limit counts UTF-16 code units of the
# text after parsing; the markup is counted too here, which only makes it safer.
MAX_MESSAGE_LEN = 4096
# A targetologist, UTM value or currency code is cut at this many units, so the
# deal name always keeps most of the room.
MAX_FIELD_LEN = 256
ELLIPSIS = "…"
# Groups digits without letting Telegram break the number across lines.
DIGIT_GROUP = "\u202f"
CURRENCY_SIGNS = {"KZT": "₸"}

_SUBDOMAIN = re.compile(r"[a-z0-9-]{1,63}")


def render_sale_message(
    *,
    deal_name: str,
    lead_id: int,
    amount: int,
    currency: str,
    targetologist: str,
    utm_source: str,
    utm_campaign: str,
    subdomain: str,
) -> str:
    """The sale announcement: deal, amount, targetologist, UTM, lead id and link."""
    link = deal_url(subdomain, lead_id)

    def compose(name: str) -> str:
        lines = [
            "💰 <b>Новая продажа с трафика</b>",
            f"<b>Сделка:</b> {name}",
            f"<b>Сумма:</b> {format_amount(amount, currency)}",
            f"<b>Таргетолог:</b> {_field(targetologist)}",
            f"<b>UTM source:</b> {_field(utm_source)}",
            f"<b>UTM campaign:</b> {_field(utm_campaign)}",
            f"<b>ID сделки:</b> {lead_id}",
        ]
        if link:
            lines.append(f'<a href="{html.escape(link, quote=True)}">Открыть сделку в amoCRM</a>')
        return "\n".join(lines)

    name = _one_line(deal_name) or "—"
    text = compose(html.escape(name, quote=False))
    if _units(text) <= MAX_MESSAGE_LEN:  # the usual case: composed once
        return text
    room = MAX_MESSAGE_LEN - _units(compose(""))
    return compose(_escape_within(name, room))


def format_amount(amount: int, currency: str) -> str:
    """150000, "KZT" -> "150 000 ₸"; other currencies keep their code ("1 200 USD")."""
    code = _one_line(currency).upper()
    unit = CURRENCY_SIGNS.get(code) or _escape_within(code, 16)
    grouped = f"{amount:,}".replace(",", DIGIT_GROUP)
    return f"{grouped} {unit}" if unit else grouped


def deal_url(subdomain: str, lead_id: int) -> str:
    """The deal's page in AmoCRM; empty when the subdomain is not a plain DNS label."""
    label = subdomain.strip().lower()
    if not _SUBDOMAIN.fullmatch(label):
        return ""
    return f"https://{label}.amocrm.ru/leads/detail/{lead_id}"


def _field(value: str) -> str:
    return _escape_within(_one_line(value), MAX_FIELD_LEN) or "—"


def _one_line(value: str) -> str:
    # A newline in a deal name could otherwise fake a line of the message.
    return " ".join(value.split())


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _escape_within(raw: str, room: int) -> str:
    """`raw` escaped, cut (with an ellipsis) so that it takes at most `room` units.

    Cuts between characters of the raw text, never inside an escape like &amp;.
    """
    escaped = html.escape(raw, quote=False)
    if _units(escaped) <= room:
        return escaped
    pieces, used = [], _units(ELLIPSIS)
    for char in raw:
        piece = html.escape(char, quote=False)
        used += _units(piece)
        if used > room:
            break
        pieces.append(piece)
    return "".join(pieces) + ELLIPSIS if room >= _units(ELLIPSIS) else ""


def render_digest_entry(
    *,
    lead_id: int,
    amount: int,
    currency: str,
    targetologist: str,
    utm_source: str,
    utm_campaign: str,
    subdomain: str,
) -> str:
    """One sale's lines in a digest: amount, targetologist, UTM and the deal's link
    (or its id). At most about 1,000 units, so a digest part always holds one."""
    link = deal_url(subdomain, lead_id)
    deal = (
        f'<a href="{html.escape(link, quote=True)}">сделка {lead_id}</a>'
        if link
        else f"сделка {lead_id}"
    )
    return "\n".join(
        [
            f"• <b>{format_amount(amount, currency)}</b> · {_field(targetologist)} · {deal}",
            f"  UTM: {_field(utm_source)} / {_field(utm_campaign)}",
        ]
    )


def digest_header(count: int, total: int, currency: str) -> str:
    """The first line of a digest: how many sales it lists and their total."""
    return (
        f"💰 <b>Новые продажи с трафика: {count}</b>\n"
        f"<b>Всего:</b> {format_amount(total, currency)}"
    )


def pack_digest(
    entries: list[tuple[str, int]], currency: str, limit: int = MAX_MESSAGE_LEN
) -> tuple[str, int]:
    """The first message of a digest of `entries` ((entry text, amount), oldest first):
    the header and as many whole entries, in order, as fit in `limit` units.
    Returns (text, how many entries it holds, at least one). The rest go in the
    next message: a sale is never split across two."""
    chosen, total, used = 0, 0, 0
    for entry, amount in entries:
        # The header grows with the count and total: measure it with this entry in.
        header = digest_header(chosen + 1, total + amount, currency)
        if chosen and _units(header) + used + 2 + _units(entry) > limit:
            break
        chosen, total, used = chosen + 1, total + amount, used + 2 + _units(entry)
    body = "\n\n".join(entry for entry, _ in entries[:chosen])
    return f"{digest_header(chosen, total, currency)}\n\n{body}", chosen


# The same text helpers for the daily summary's messages (notifier_svc/summary.py).
one_line, units, escape_within = _one_line, _units, _escape_within
