"""UTM extraction from deal custom fields: codes, names, configured fields, landing URLs."""

from __future__ import annotations

import pytest

from amoroute.v1 import deal_pb2
from router_svc.utm import UTM_KEYS, UtmSources, extract_utm

NO_EXTRAS = UtmSources(extra_fields={})


def field(
    value: str | list[str], *, id: int = 0, name: str = "", code: str = ""
) -> deal_pb2.CustomField:
    values = [value] if isinstance(value, str) else value
    return deal_pb2.CustomField(
        id=id, name=name, code=code, values=[deal_pb2.CustomFieldValue(value=v) for v in values]
    )


def deal(*fields: deal_pb2.CustomField) -> deal_pb2.Deal:
    return deal_pb2.Deal(lead_id=1, custom_fields=fields)


@pytest.mark.parametrize(
    ("fields", "sources", "expected_source"),
    [
        pytest.param(
            [
                field("https://x.kz/?utm_source=from_url", name="Ссылка"),
                field("from_extra", id=1402999, name="Источник"),
                field("from_name", name="utm_source"),
                field("from_code", id=5, name="Something", code="UTM_SOURCE"),
            ],
            UtmSources(extra_fields={"source": ("1402999",)}),
            "from_code",
            id="code_beats_name_extra_and_url",
        ),
        pytest.param(
            [
                field("https://x.kz/?utm_source=from_url", name="Ссылка"),
                field("from_extra", id=1402999),
                field("from_name", name="UTM Source"),
            ],
            UtmSources(extra_fields={"source": ("1402999",)}),
            "from_name",
            id="name_beats_extra_and_url",
        ),
        pytest.param(
            [field("https://x.kz/?utm_source=from_url"), field("from_extra", id=1402999)],
            UtmSources(extra_fields={"source": ("1402999",)}),
            "from_extra",
            id="extra_field_beats_url",
        ),
        pytest.param(
            [field("", code="UTM_SOURCE"), field("   ", name="utm_source"), field("x", id=7)],
            UtmSources(extra_fields={"source": ("7",)}),
            "x",
            id="empty_and_blank_values_fall_through_to_next_source",
        ),
        pytest.param(
            [field("lower", code="utm_source")],
            NO_EXTRAS,
            "lower",
            id="code_matches_case_insensitively",
        ),
        pytest.param(
            [field(["", "  second  "], code="UTM_SOURCE")],
            NO_EXTRAS,
            "second",
            id="first_non_empty_value_of_a_field_stripped",
        ),
    ],
)
def test_sources_are_tried_in_priority_order(
    fields: list[deal_pb2.CustomField], sources: UtmSources, expected_source: str
) -> None:
    assert extract_utm(deal(*fields), sources).source == expected_source


@pytest.mark.parametrize(
    "name",
    ["utm_source", "UTM Source", "utm-source", " Utm_Source ", "UTM  -  source", "UTM_SOURCE"],
)
def test_field_name_matches_after_normalising(name: str) -> None:
    assert extract_utm(deal(field("fb", name=name)), NO_EXTRAS).source == "fb"


@pytest.mark.parametrize("name", ["utm source x", "utmsource", "source", "Источник"])
def test_unrelated_field_names_do_not_match(name: str) -> None:
    assert extract_utm(deal(field("fb", name=name)), NO_EXTRAS).source == ""


@pytest.mark.parametrize(
    ("fields", "sources", "expected"),
    [
        pytest.param(
            [
                field("kenesary_fb", id=11, name="Источник"),
                field("Весна", id=12, name="Название РК"),
            ],
            UtmSources(extra_fields={"source": ("Источник",), "campaign": ("название рк",)}),
            {"source": "kenesary_fb", "campaign": "Весна"},
            id="cyrillic_names_case_insensitive",
        ),
        pytest.param(
            [field("by_id", id=1402999, name="Whatever")],
            UtmSources(extra_fields={"source": ("1402999",)}),
            {"source": "by_id"},
            id="field_id_as_string",
        ),
        pytest.param(
            [field("second", id=2, name="B"), field("first", id=1, name="A")],
            UtmSources(extra_fields={"source": ("A", "B")}),
            {"source": "first"},
            id="configured_order_is_the_priority",
        ),
        pytest.param(
            [field("", id=1, name="A"), field("fallback", id=2, name="B")],
            UtmSources(extra_fields={"source": ("A", "B")}),
            {"source": "fallback"},
            id="empty_configured_field_falls_through",
        ),
    ],
)
def test_configured_extra_fields(
    fields: list[deal_pb2.CustomField], sources: UtmSources, expected: dict[str, str]
) -> None:
    marks = extract_utm(deal(*fields), sources)
    for key in UTM_KEYS:
        assert getattr(marks, key) == expected.get(key, "")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "https://onai.kz/land?utm_source=a&amp;utm_campaign=b",
            {"source": "a", "campaign": "b"},
            id="html_escaped_ampersand",
        ),
        pytest.param(
            "https://onai.kz/?UTM_Source=Kenesary_FB&utm_medium=cpc&utm_term=%D0%BA%D1%83%D1%80%D1%81",
            {"source": "Kenesary_FB", "medium": "cpc", "term": "курс"},
            id="keys_case_insensitive_values_percent_decoded",
        ),
        pytest.param(
            "http://x.kz/?utm_source=&utm_source=second&utm_content=a+b#utm_medium=frag",
            {"source": "second", "content": "a b"},
            id="empty_param_skipped_fragment_ignored",
        ),
        pytest.param(
            "http://[broken/?utm_source=still_read",
            {"source": "still_read"},
            id="malformed_host_does_not_raise",
        ),
        pytest.param("https://onai.kz/landing", {}, id="url_without_query"),
    ],
)
def test_url_query_string(url: str, expected: dict[str, str]) -> None:
    marks = extract_utm(deal(field(url, id=3, name="Ссылка на страницу")), NO_EXTRAS)
    for key in UTM_KEYS:
        assert getattr(marks, key) == expected.get(key, "")


def test_configured_url_fields_restrict_which_fields_are_parsed() -> None:
    sources = UtmSources(extra_fields={}, url_fields=("Ссылка на страницу",))
    marks = extract_utm(
        deal(
            field("https://other.kz/?utm_source=other", id=1, name="Сайт"),
            field("onai.kz/?utm_source=landing", id=2, name="ссылка на страницу"),
        ),
        sources,
    )
    assert marks.source == "landing"


def test_url_fills_only_keys_the_fields_left_empty() -> None:
    marks = extract_utm(
        deal(
            field("from_code", code="UTM_SOURCE"),
            field("https://x.kz/?utm_source=url_src&utm_campaign=url_camp"),
        ),
        NO_EXTRAS,
    )
    assert (marks.source, marks.campaign) == ("from_code", "url_camp")


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param([], id="no_fields"),
        pytest.param([deal_pb2.CustomField(id=1, name="utm_source")], id="field_without_values"),
        pytest.param([field("not a url ? = & ;;", name="Комментарий")], id="plain_text"),
        pytest.param([field("https://x.kz/?" + "utm_source=a&" * 50_000)], id="huge_query"),
        pytest.param([field("x" * 1_000_000, name="Описание")], id="huge_text"),
        pytest.param([field("https://x.kz/?utm_source=%zz%", name="u")], id="bad_percent_escape"),
    ],
)
def test_odd_data_never_raises(fields: list[deal_pb2.CustomField]) -> None:
    marks = extract_utm(deal(*fields), NO_EXTRAS)
    assert isinstance(marks, deal_pb2.UtmMarks)


def test_sources_cannot_be_changed_through_the_callers_dict() -> None:
    extra = {"source": ("A",)}
    sources = UtmSources(extra_fields=extra)
    extra["source"] = ("B",)
    assert sources.extra_fields["source"] == ("A",)
