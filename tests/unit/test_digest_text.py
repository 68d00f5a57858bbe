"""A digest of several sales for one chat (notifier_svc.message): header, whole sales, 4096."""

import re

import pytest

from notifier_svc.message import (
    MAX_MESSAGE_LEN,
    digest_header,
    pack_digest,
    render_digest_entry,
)


def _entry(lead_id: int, **overrides: object) -> tuple[str, int]:
    fields: dict[str, object] = {
        "lead_id": lead_id,
        "amount": 150000,
        "currency": "KZT",
        "targetologist": "Kenesary",
        "utm_source": "kenesary_fb",
        "utm_campaign": "tp_june",
        "subdomain": "onaiagencykz",
    }
    fields.update(overrides)
    return render_digest_entry(**fields), int(fields["amount"])  # type: ignore[arg-type, call-overload]


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_entry_names_amount_targetologist_utm_and_links_the_deal() -> None:
    entry, _ = _entry(24681357)
    assert "150\u202f000 ₸" in entry and "Kenesary" in entry
    assert "kenesary_fb / tp_june" in entry
    assert '<a href="https://onaiagencykz.amocrm.ru/leads/detail/24681357">' in entry


def test_entry_escapes_outside_text_and_keeps_the_lead_id_without_a_link() -> None:
    entry, _ = _entry(7, subdomain="", targetologist="<b>K</b>", utm_source="a&b")
    assert "&lt;b&gt;K&lt;/b&gt;" in entry and "a&amp;b" in entry
    assert "<a " not in entry and "сделка 7" in entry


def test_digest_counts_its_sales_and_totals_their_amounts() -> None:
    entries = [_entry(1, amount=100_000), _entry(2, amount=50_000), _entry(3, amount=1)]
    text, count = pack_digest(entries, "KZT")
    assert count == 3
    assert text.startswith(digest_header(3, 150_001, "KZT"))
    assert "150\u202f001 ₸" in text.splitlines()[1]
    # Oldest first, each whole.
    assert [int(m) for m in re.findall(r"detail/(\d+)", text)] == [1, 2, 3]


@pytest.mark.parametrize("limit", [MAX_MESSAGE_LEN, 1000, 300])
def test_digest_stops_before_the_sale_that_would_not_fit(limit: int) -> None:
    entries = [_entry(lead, targetologist="К" * 200) for lead in range(1, 60)]
    text, count = pack_digest(entries, "KZT", limit)
    assert 1 <= count < len(entries)
    assert _units(text) <= limit or count == 1
    with_next = pack_digest(entries[: count + 1], "KZT", limit=10**6)[0]
    assert _units(with_next) > limit
    assert text.count("• <b>") == count


def test_every_sale_lands_in_exactly_one_part() -> None:
    entries = [_entry(lead, utm_campaign="c" * (lead * 7 % 250)) for lead in range(1, 200)]
    seen: list[int] = []
    rest = entries
    while rest:
        text, count = pack_digest(rest, "KZT")
        assert _units(text) <= MAX_MESSAGE_LEN
        seen += [int(m) for m in re.findall(r"detail/(\d+)", text)]
        rest = rest[count:]
    assert seen == list(range(1, 200))
