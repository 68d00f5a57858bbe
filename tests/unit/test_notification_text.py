"""The Telegram text announcing a traffic sale (notifier_svc.message)."""

import re

import pytest

from notifier_svc.message import MAX_MESSAGE_LEN, format_amount, render_sale_message


def _render(**overrides: object) -> str:
    fields: dict[str, object] = {
        "deal_name": "Курс «Таргетолог PRO»",
        "lead_id": 24681357,
        "amount": 150000,
        "currency": "KZT",
        "targetologist": "Kenesary",
        "utm_source": "kenesary_fb",
        "utm_campaign": "tp_june",
        "subdomain": "onaiagencykz",
    }
    fields.update(overrides)
    return render_sale_message(**fields)  # type: ignore[arg-type]


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _tags(text: str) -> list[str]:
    return re.findall(r"</?[a-z]+[^>]*>", text)


def test_text_names_deal_amount_targetologist_utm_and_lead() -> None:
    text = _render()
    for part in ("Курс «Таргетолог PRO»", "150\u202f000 ₸", "Kenesary", "kenesary_fb",
                 "tp_june", "24681357"):
        assert part in text


def test_text_links_to_the_deal_in_amocrm() -> None:
    assert '<a href="https://onaiagencykz.amocrm.ru/leads/detail/24681357">' in _render()


def test_html_in_deal_name_and_utm_is_escaped_not_interpreted() -> None:
    text = _render(
        deal_name='<b>VIP</b> & <a href="https://evil.example">click</a>',
        utm_source="<script>alert(1)</script>",
        utm_campaign="a&b",
        targetologist="<i>Kenesary</i>",
    )
    assert "&lt;b&gt;VIP&lt;/b&gt; &amp; &lt;a href=\"https://evil.example\"&gt;click&lt;/a&gt;" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "a&amp;b" in text
    assert "&lt;i&gt;Kenesary&lt;/i&gt;" in text
    # Only the message's own markup is left as tags.
    assert {t.split()[0].strip("<>/") for t in _tags(text)} == {"b", "a"}
    assert "evil.example" not in "".join(_tags(text))


def test_newlines_in_outside_text_cannot_fake_message_lines() -> None:
    text = _render(deal_name="Курс\n<b>Сумма:</b> 1 ₸")
    assert text.count("\n") == _render().count("\n")


def test_cyrillic_and_emoji_are_kept_as_they_are() -> None:
    text = _render(deal_name="Обучение «Таргет» 🚀", targetologist="Кенесары")
    assert "Обучение «Таргет» 🚀" in text
    assert "Кенесары" in text


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (150000, "KZT", "150\u202f000 ₸"),
        (0, "KZT", "0 ₸"),
        (999, "kzt", "999 ₸"),
        (1234567, "USD", "1\u202f234\u202f567 USD"),
        (5, "<b>", "5 &lt;B&gt;"),
    ],
)
def test_amount_is_grouped_in_thousands_with_the_currency(
    amount: int, currency: str, shown: str
) -> None:
    assert format_amount(amount, currency) == shown


@pytest.mark.parametrize(
    "subdomain", ["", "evil.example/x?", 'a"onclick="x', "bad domain", "ÿandex", "a" * 64]
)
def test_without_a_valid_subdomain_there_is_no_link_but_the_lead_id_stays(subdomain: str) -> None:
    text = _render(subdomain=subdomain)
    assert "<a " not in text
    assert "24681357" in text


@pytest.mark.parametrize("name", ["Я" * 10_000, "&" * 10_000, "🚀" * 5_000, "<>" * 5_000])
def test_long_deal_name_is_cut_so_the_message_fits_telegram(name: str) -> None:
    text = _render(deal_name=name)
    assert _utf16_len(text) <= MAX_MESSAGE_LEN
    assert "…" in text
    # The markup and the facts after the name survive the cut.
    assert text.endswith("Открыть сделку в amoCRM</a>")
    assert "24681357" in text and "150\u202f000 ₸" in text
    # No escape sequence is cut in half.
    assert not re.search(r"&(?!amp;|lt;|gt;)", text)


def test_long_utm_and_targetologist_are_cut_too() -> None:
    text = _render(targetologist="K" * 10_000, utm_source="s" * 10_000, utm_campaign="&" * 10_000,
                   deal_name="D" * 10_000)
    assert _utf16_len(text) <= MAX_MESSAGE_LEN
    assert "D" * 1000 in text  # the deal name keeps most of the room


def test_short_message_is_not_cut() -> None:
    assert "…" not in _render()
