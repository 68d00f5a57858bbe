"""AmoCRM bracket-form bodies -> lead events -> Deal protos, on real-shaped fixtures."""

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amoroute.v1 import deal_pb2
from edge import amocrm_form
from edge.amocrm_form import (
    FormError,
    FormLimits,
    LeadEvent,
    deal_from_event,
    lead_events,
    parse_form,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "amocrm"

# file -> (action, lead ids in order)
FIXTURE_LEADS: dict[str, tuple[str, list[int]]] = {
    "status_won_with_utm.form": ("status", [24681357]),
    "batch_two_leads.form": ("status", [24681402, 24681415]),
    "status_without_custom_fields.form": ("status", [24681499]),
    "enum_multivalue.form": ("update", [24681520]),
    "lead_add.form": ("add", [24681600]),
    "dp_status_short.form": ("status", [24681357]),
    "lead_delete.form": ("delete", [24681499]),
}


def fixture_events(name: str) -> list[LeadEvent]:
    return lead_events(parse_form((FIXTURES / name).read_bytes()))


def fixture_deals(name: str) -> list[deal_pb2.Deal]:
    return [deal_from_event(event) for event in fixture_events(name)]


def fields_by_code_or_name(deal: deal_pb2.Deal) -> dict[str, deal_pb2.CustomField]:
    return {field.code or field.name: field for field in deal.custom_fields}


def lead_body(**fields: str) -> bytes:
    """A one-lead status webhook; keyword `x__y` means leads[status][0][x][y]."""
    pairs = {"leads[status][0][id]": "1", "account[id]": "32145678"}
    for name, value in fields.items():
        path = "".join(f"[{segment}]" for segment in name.split("__"))
        pairs[f"leads[status][0]{path}"] = value
    return urlencode(pairs).encode()


def lead_deal(**fields: str) -> deal_pb2.Deal:
    (event,) = lead_events(parse_form(lead_body(**fields)))
    return deal_from_event(event)


# --- real-shaped fixtures -------------------------------------------------------------------


def test_fixture_table_covers_every_form_file() -> None:
    assert {path.name for path in FIXTURES.glob("*.form")} == set(FIXTURE_LEADS)


@pytest.mark.parametrize("name", sorted(FIXTURE_LEADS))
def test_fixture_yields_its_leads_with_account(name: str) -> None:
    action, lead_ids = FIXTURE_LEADS[name]
    events = fixture_events(name)
    deals = [deal_from_event(event) for event in events]

    assert [(e.action, e.index) for e in events] == [(action, i) for i in range(len(lead_ids))]
    assert [deal.lead_id for deal in deals] == lead_ids
    assert {(d.event, d.account_id, d.account_subdomain) for d in deals} == {
        (action, 32145678, "onaiagencykz")
    }
    assert {deal.pipeline_id for deal in deals} == {10418746}


@pytest.mark.parametrize("name", sorted(FIXTURE_LEADS))
def test_event_survives_json_round_trip(name: str) -> None:
    for event in fixture_events(name):
        stored = json.loads(json.dumps(event.to_json(), ensure_ascii=False))
        restored = LeadEvent.from_json(stored)
        assert restored == event
        assert deal_from_event(restored) == deal_from_event(event)


def test_won_deal_carries_price_pipeline_status_and_times() -> None:
    (deal,) = fixture_deals("status_won_with_utm.form")

    assert (deal.lead_id, deal.price, deal.pipeline_id) == (24681357, 150000, 10418746)
    assert (deal.status_id, deal.old_status_id) == (142, 80123457)
    assert deal.responsible_user_id == 11223344
    assert deal.created_at.seconds == 1750003200
    assert deal.updated_at.seconds == 1750694400
    assert [(tag.id, tag.name) for tag in deal.tags] == [(65401, "facebook"), (65403, "оплата")]


def test_won_deal_decodes_cyrillic_name() -> None:
    (deal,) = fixture_deals("status_won_with_utm.form")
    assert deal.name == "Курс «Таргетолог PRO» — Айгерим"


def test_won_deal_keeps_tracking_fields_by_code() -> None:
    (deal,) = fixture_deals("status_won_with_utm.form")
    fields = fields_by_code_or_name(deal)

    source = fields["UTM_SOURCE"]
    assert (source.id, source.name) == (1402007, "utm_source")
    assert [v.value for v in source.values] == ["kenesary_fb"]
    assert {code: f.values[0].value for code, f in fields.items() if code.isupper()} == {
        "UTM_SOURCE": "kenesary_fb",
        "UTM_MEDIUM": "cpc",
        "UTM_CAMPAIGN": "tp_june",
        "UTM_CONTENT": "video_v2",
        "FBCLID": "IwAR2xYz_kenesary_test",
    }


def test_url_field_value_is_html_unescaped() -> None:
    (deal,) = fixture_deals("status_won_with_utm.form")
    url = fields_by_code_or_name(deal)["Ссылка на сайт"].values[0].value

    assert "&utm_campaign=tp_june" in url
    assert "&amp;" not in url


def test_date_field_bare_value_becomes_value_without_enum() -> None:
    (deal,) = fixture_deals("status_won_with_utm.form")
    date = fields_by_code_or_name(deal)["Дата оплаты"]

    assert (date.id, list(date.values)) == (
        1402103,
        [deal_pb2.CustomFieldValue(value="1750636800")],
    )


def test_batch_body_yields_every_lead_in_order() -> None:
    first, second = fixture_deals("batch_two_leads.form")

    assert (first.lead_id, first.price, first.name) == (24681402, 99000, "Сделка #24681402")
    assert (second.lead_id, second.price) == (24681415, 45000)
    assert second.name == "Ерлан — консультация"
    assert fields_by_code_or_name(first)["UTM_SOURCE"].values[0].value == "ref_TEST123"
    assert fields_by_code_or_name(second)["UTM_SOURCE"].values[0].value == "google_organic"
    assert fields_by_code_or_name(second)["UTM_TERM"].values[0].value == "курсы таргетинга алматы"


def test_digital_pipeline_hook_without_name_or_price_maps_to_defaults() -> None:
    (deal,) = fixture_deals("dp_status_short.form")

    assert (deal.name, deal.price, list(deal.custom_fields), list(deal.tags)) == ("", 0, [], [])
    assert (deal.status_id, deal.old_status_id) == (142, 80123457)
    assert deal.old_pipeline_id == 10418746
    assert not deal.HasField("created_at")
    assert not deal.HasField("updated_at")


def test_status_without_custom_fields_has_zero_price() -> None:
    (deal,) = fixture_deals("status_without_custom_fields.form")
    assert (deal.price, deal.status_id, list(deal.custom_fields)) == (0, 142, [])


def test_delete_hook_maps_to_delete_event() -> None:
    (event,) = fixture_events("lead_delete.form")
    deal = deal_from_event(event)

    assert (event.action, deal.event, deal.lead_id, deal.status_id) == (
        "delete",
        "delete",
        24681499,
        80123456,
    )


def test_select_and_multiselect_values_keep_enum_ids() -> None:
    (deal,) = fixture_deals("enum_multivalue.form")
    fields = fields_by_code_or_name(deal)

    assert [(v.value, v.enum_id) for v in fields["Тариф"].values] == [("PRO", 3301011)]
    assert [(v.value, v.enum_id) for v in fields["Каналы трафика"].values] == [
        ("Facebook", 3301021),
        ("Instagram", 3301023),
        ("TikTok", 3301027),
    ]
    assert [(v.value, v.enum_id) for v in fields["Оплата подтверждена"].values] == [("1", 0)]


def test_add_hook_keeps_ym_uid_as_text() -> None:
    (deal,) = fixture_deals("lead_add.form")
    assert fields_by_code_or_name(deal)["_YM_UID"].values[0].value == "1750699000123456789"


def test_raw_http_capture_body_parses_like_the_form_fixture() -> None:
    _, _, body = (FIXTURES / "status_won_with_utm.http").read_bytes().partition(b"\r\n\r\n")
    assert parse_form(body) == parse_form((FIXTURES / "status_won_with_utm.form").read_bytes())


# --- parser shape ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(b"a=1&a=2", {"a": "2"}, id="repeated-name-last-wins"),
        pytest.param(b"leads[1]=y&leads[0]=x", {"leads": ["x", "y"]}, id="numeric-keys-become-ordered-list"),
        pytest.param(b"leads[7]=x&leads[2]=y", {"leads": ["y", "x"]}, id="sparse-indexes-just-ordered"),
        pytest.param(b"leads[]=x&leads[]=y", {"leads": ["x", "y"]}, id="empty-brackets-append"),
        pytest.param(b"leads[0]=x&leads[b]=y", {"leads": {"0": "x", "b": "y"}}, id="mixed-keys-stay-dict"),
        pytest.param(b"leads[01]=x", {"leads": {"01": "x"}}, id="non-canonical-number-is-a-name"),
        pytest.param(b"k=%D0%90+%26+b", {"k": "А & b"}, id="percent-and-plus-decoded"),
        pytest.param("k=Ерлан".encode(), {"k": "Ерлан"}, id="raw-utf8-accepted"),
        pytest.param(b"a&b=", {"a": "", "b": ""}, id="blank-values-kept"),
        pytest.param(b"&&a=1&&", {"a": "1"}, id="empty-pairs-skipped"),
        pytest.param(b"", {}, id="empty-body-is-an-empty-form"),
        pytest.param(b"&&&", {}, id="only-separators"),
        pytest.param(b"=1", {}, id="only-nameless"),
        pytest.param(b"=x&a=1", {"a": "1"}, id="nameless-pair-skipped"),
        pytest.param(b"a%5Bb=1", {"a[b": "1"}, id="unclosed-bracket-is-literal"),
        pytest.param(b"a]b[=1", {"a]b[": "1"}, id="reversed-brackets-are-literal"),
        pytest.param(b"a[b]c=1", {"a[b]c": "1"}, id="text-after-bracket-is-literal"),
        pytest.param(b"[a]=1", {"[a]": "1"}, id="bracket-without-base-is-literal"),
        pytest.param(
            b"contacts[add][0][id]=5&task[0][text]=x&a[b][c]=1",
            {"contacts[add][0][id]": "5", "task[0][text]": "x", "a[b][c]": "1"},
            id="only-leads-and-account-are-nested",
        ),
        pytest.param(b"a" + b"[b]" * 50 + b"=1", {"a" + "[b]" * 50: "1"}, id="deep-other-name-flat"),
        pytest.param(b"leads[a]b]=1", {"leads[a]b]": "1"}, id="malformed-nested-name-is-literal"),
        pytest.param(
            b"account[id]=1&account[_links][self]=u",
            {"account": {"id": "1", "_links": {"self": "u"}}},
            id="account-nested",
        ),
        pytest.param(b"leads[]=x&leads[5]=y&leads[]=z", {"leads": ["x", "y", "z"]}, id="append-after-index"),
    ],
)
def test_parse_form_builds_php_style_structure(body: bytes, expected: dict[str, Any]) -> None:
    assert parse_form(body) == expected


@pytest.mark.parametrize(
    ("body", "limits", "message"),
    [
        pytest.param(b"a=" + b"x" * 20, FormLimits(max_body_bytes=10), "limit", id="too-big"),
        pytest.param(b"k=%FF%FE", FormLimits(), "UTF-8", id="invalid-utf8-value"),
        pytest.param(b"k=\xff", FormLimits(), "UTF-8", id="invalid-raw-byte"),
        pytest.param(b"%C3%28=1", FormLimits(), "UTF-8", id="invalid-utf8-name"),
        pytest.param(b"a=1&b=2&c=3", FormLimits(max_keys=2), "3 fields", id="too-many-fields"),
        pytest.param(
            b"leads[status][999999999][id]=1", FormLimits(), "index above", id="huge-index"
        ),
        pytest.param(b"leads[" + b"9" * 5000 + b"]=1", FormLimits(), "index above", id="5000-digits"),
        pytest.param(b"leads[]=1&leads[]=2", FormLimits(max_index=0), "index above", id="append-over"),
        pytest.param(b"leads" + b"[b]" * 50 + b"=1", FormLimits(), "deeper", id="depth-50"),
        pytest.param(b"leads=1&leads[b]=2", FormLimits(), "both as a value", id="scalar-then-group"),
        pytest.param(b"leads[b]=2&leads=1", FormLimits(), "both as a value", id="group-then-scalar"),
        pytest.param(b"leads[b]=1&leads[b][c]=2", FormLimits(), r"uses 'leads\[b\]'", id="nested-conflict"),
    ],
)
def test_parse_form_rejects_bad_bodies(body: bytes, limits: FormLimits, message: str) -> None:
    with pytest.raises(FormError, match=message):
        parse_form(body, limits)


# How fast such bodies are refused is measured by python -m bench.hostile_bodies, not here.
@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            b"&".join(b"k%d=v" % i for i in range(100_000)), "100,000 fields; the limit is", id="100k-fields"
        ),
        pytest.param(b"leads[status][999999999][id]=1", "index above", id="huge-index"),
        pytest.param(b"leads[" + b"9" * 500_000 + b"]=1", "index above", id="half-megabyte-index"),
    ],
)
def test_hostile_body_is_refused_naming_the_limit(body: bytes, message: str) -> None:
    with pytest.raises(FormError, match=message):
        parse_form(body)


# --- lead events ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"leads[status][0][id]=abc", r"leads\[status\]\[0\]\[id\]", id="text-id"),
        pytest.param(b"leads[status][0][name]=x", "positive integer", id="missing-id"),
        pytest.param(b"leads[status][0][id]=0", "positive integer", id="zero-id"),
        pytest.param(b"leads[status][0][id]=-5", "out of range", id="negative-id"),
        pytest.param(b"leads[status][0][id][x]=1", "single value", id="grouped-id"),
        pytest.param(b"leads=x", "must hold actions", id="leads-scalar"),
        pytest.param(b"leads[0][id]=1", "must hold actions", id="leads-list"),
        pytest.param(b"leads[status][id]=5", "numbered list", id="action-not-numbered"),
        pytest.param(b"leads[status][0]=5", "is not a lead", id="lead-scalar"),
    ],
)
def test_lead_events_rejects_leads_without_valid_id(body: bytes, message: str) -> None:
    with pytest.raises(FormError, match=message):
        lead_events(parse_form(body))


def test_lead_events_limits_leads_per_body() -> None:
    form = parse_form(b"leads[add][0][id]=1&leads[add][1][id]=2&leads[status][0][id]=3")
    assert len(lead_events(form, FormLimits(max_leads=3))) == 3
    with pytest.raises(FormError, match="more than 2 leads"):
        lead_events(form, FormLimits(max_leads=2))


def test_leads_over_the_limit_end_the_parse() -> None:
    body = b"&".join(b"leads[add][%d][id]=%d" % (n, n + 1) for n in range(3))
    body += b"&leads[future][0][id]=4"  # an action lead_events() ignores is not counted
    assert len(lead_events(parse_form(body, FormLimits(max_leads=3)))) == 3
    with pytest.raises(FormError, match="more than 2 leads"):
        parse_form(body, FormLimits(max_leads=2))


def test_lead_events_keeps_action_order_and_ignores_other_entities() -> None:
    form = parse_form(
        b"contacts[add][0][id]=9&leads[status][1][id]=2&leads[add][0][id]=3"
        b"&leads[status][0][id]=1&leads[future][0][id]=4&task[add][0][id]=5"
    )
    events = lead_events(form)
    assert [(e.action, e.index, e.lead["id"]) for e in events] == [
        ("status", 0, "1"),
        ("status", 1, "2"),
        ("add", 0, "3"),
    ]
    assert all(event.account == {} for event in events)


def test_body_without_leads_yields_no_events() -> None:
    assert lead_events(parse_form(b"contacts[add][0][id]=9&account[subdomain]=x")) == []


# --- deal mapping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        ("", 0),
        ("0", 0),
        ("150000", 150000),
        ("150000.00", 150000),
        ("99.5", 100),
        ("99.49", 99),
        ("12 000", 12000),
        ("1\u00a0250\u00a0000", 1250000),
        (" 700 ", 700),
    ],
)
def test_price_accepts_amocrm_amount_formats(price: str, expected: int) -> None:
    assert lead_deal(price=price).price == expected


@pytest.mark.parametrize("price", ["abc", "12,000", "12,50", "12 5", "-5", "1e5", "9" * 25])
def test_price_in_unknown_format_is_rejected_naming_the_field(price: str) -> None:
    with pytest.raises(FormError, match=r"leads\[status\]\[0\]\[price\]"):
        lead_deal(price=price)


def test_non_integer_field_error_names_field_and_value() -> None:
    with pytest.raises(FormError) as error:
        lead_deal(pipeline_id="abc")
    assert str(error.value) == "leads[status][0][pipeline_id]: 'abc' is not an integer"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"status_id": "99999999999999999999"}, "[status_id]"),
        ({"old_status_id": "1.5"}, "[old_status_id]"),
        ({"responsible_user_id": "-1"}, "[responsible_user_id]"),
        ({"created_at": "yesterday"}, "[created_at]"),
        ({"updated_at": "99999999999999"}, "[updated_at]"),
        ({"name__x": "1"}, "[name]"),
        ({"tags__0": "vip"}, "[tags][0]"),
        ({"tags__0__id": "x"}, "[tags][0][id]"),
        ({"custom_fields__a__id": "1"}, "[custom_fields]"),
        ({"custom_fields__0": "1"}, "[custom_fields][0]"),
        ({"custom_fields__0__id": "x"}, "[custom_fields][0][id]"),
        ({"custom_fields__0__values__0__enum": "x"}, "[custom_fields][0][values][0][enum]"),
        ({"custom_fields__0__values__0__0": "x"}, "[custom_fields][0][values][0]"),
    ],
)
def test_malformed_lead_field_is_rejected_naming_it(fields: dict[str, str], field: str) -> None:
    with pytest.raises(FormError, match=re.escape("leads[status][0]" + field)):
        lead_deal(**fields)


def test_times_fall_back_to_legacy_fields() -> None:
    deal = lead_deal(date_create="1749900000", last_modified="1750694401", updated_at="")
    assert (deal.created_at.seconds, deal.updated_at.seconds) == (1749900000, 1750694401)


def test_account_id_falls_back_to_account_block() -> None:
    assert lead_deal().account_id == 32145678
    assert lead_deal(account_id="777").account_id == 777


def test_lone_custom_field_value_is_read_as_one_value() -> None:
    deal = lead_deal(custom_fields__0__id="5", custom_fields__0__values__value="a &amp; b")
    assert [v.value for v in deal.custom_fields[0].values] == ["a & b"]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param([], id="not-object"),
        pytest.param({"action": "won", "index": 0, "lead": {}}, id="unknown-action"),
        pytest.param({"action": "add", "index": "0", "lead": {}}, id="text-index"),
        pytest.param({"action": "add", "index": True, "lead": {}}, id="bool-index"),
        pytest.param({"action": "add", "index": 0, "lead": []}, id="lead-not-object"),
        pytest.param({"action": "add", "index": 0, "lead": {}, "account": 1}, id="bad-account"),
    ],
)
def test_from_json_rejects_malformed_stored_event(data: Any) -> None:
    with pytest.raises(FormError):
        LeadEvent.from_json(data)


def test_from_json_defaults_missing_account() -> None:
    event = LeadEvent.from_json({"action": "add", "index": 0, "lead": {"id": "1"}})
    assert event.account == {}


# --- properties -----------------------------------------------------------------------------


def parse_everything(body: bytes) -> None:
    """Run the whole pipeline; only FormError may escape."""
    try:
        for event in lead_events(parse_form(body)):
            deal_from_event(event)
            LeadEvent.from_json(json.loads(json.dumps(event.to_json())))
    except FormError:
        pass


WORDS = ["leads", "status", "add", "delete", "0", "1", "2", "", "01", "-1", "10001", "id"]
WORDS += ["name", "price", "custom_fields", "values", "value", "enum", "tags", "code"]
WORDS += ["created_at", "updated_at", "last_modified", "pipeline_id", "account", "subdomain"]
segments = st.one_of(st.sampled_from(WORDS), st.text(max_size=4))
keys = st.builds(
    lambda base, path, tail: base + "".join(f"[{segment}]" for segment in path) + tail,
    st.one_of(
        st.sampled_from(["leads[status][0]", "leads[add][1]", "leads[status][0][custom_fields]"]),
        st.sampled_from(["leads", "account", "contacts"]),
        st.text(max_size=4),
    ),
    st.lists(segments, max_size=5),
    st.sampled_from(["", "", "", "[", "]", "[x", "]["]),
)
values = st.one_of(
    st.sampled_from(["", "1", "0", "-1", "abc", "12 000", "1.5", "&amp;", "9" * 25]),
    st.text(max_size=8),
)
bodies = st.builds(
    # Half the bodies start with a valid lead so the Deal mapping is exercised too.
    lambda valid, pairs: "&".join(
        (["leads[status][0][id]=1"] if valid else [])
        + [f"{quote(k, safe='[]')}={quote(v)}" for k, v in pairs]
    ).encode(),
    st.booleans(),
    st.lists(st.tuples(keys, values), max_size=25),
)


@settings(database=None, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_either_parse_or_raise_form_error(body: bytes) -> None:
    parse_everything(body)


@settings(database=None, deadline=None, max_examples=300)
@given(bodies)
def test_random_bracket_keys_either_parse_or_raise_form_error(body: bytes) -> None:
    parse_everything(body)


# Bytes that trip form decoders: escapes cut short or not hex, plus, separators,
# brackets, NUL, a replacement character, raw Cyrillic and raw invalid UTF-8.
tricky = st.lists(
    st.sampled_from(
        ["%", "%4", "%41", "%zz", "%D0", "%D0%90", "%FF", "%C3%28", "%EF%BF%BD", "%00", "%26",
         "%3D", "%5B", "%5D", "+", "&", "=", "[", "]", "a", "b", "0", "\u0439", "\ufffd", "\x00"]
    ).map(str.encode)
    | st.sampled_from([b"\xff", b"\xd0"]),
    max_size=30,
).map(b"".join)


@settings(database=None, deadline=None, max_examples=500)
@given(st.one_of(tricky, bodies, st.binary(max_size=300)))
def test_compiled_decoder_agrees_with_the_strict_one_or_declines(body: bytes) -> None:
    """Falcon's compiled decoder serves the usual body; wherever it answers, it gives
    the fields the strict pass gives, in the same order."""
    compiled = amocrm_form._compiled_fields(body, amocrm_form.DEFAULT_LIMITS)
    try:
        strict = list(amocrm_form._fields(body, amocrm_form.DEFAULT_LIMITS))
    except FormError:
        assert not compiled  # None, or {} for a body with no named field
        return
    if compiled is not None:
        assert list(compiled.items()) == strict


def test_batch_of_leads_is_decoded_by_the_compiled_decoder() -> None:
    body = (FIXTURES / "batch_two_leads.form").read_bytes()
    assert amocrm_form._compiled_fields(body, amocrm_form.DEFAULT_LIMITS) is not None


# --- bounds on what a body can cost -----------------------------------------------------------


def test_value_over_the_cap_is_cut_and_says_so_in_the_deal_too() -> None:
    limits = FormLimits(max_value_chars=10)
    body = b"leads[status][0][id]=7&leads[status][0][name]=" + b"x" * 25
    (event,) = lead_events(parse_form(body, limits), limits)
    assert event.lead["name"] == "x" * 10 + amocrm_form.TRUNCATED_MARK.format(length=25)
    assert deal_from_event(event).name == event.lead["name"]  # routed as stored


def test_value_over_the_cap_is_cut_on_the_strict_pass_too() -> None:
    limits = FormLimits(max_value_chars=4)
    # A repeated name sends the body through the field-by-field pass.
    body = b"k=1&k=" + "Ерлан-Ерлан".encode()
    assert parse_form(body, limits) == {"k": "Ерла" + amocrm_form.TRUNCATED_MARK.format(length=11)}


def test_groups_of_fields_are_bounded() -> None:
    body = b"&".join(b"leads[status][0][custom_fields][%d][values][0][value]=1" % k for k in range(5))
    # leads, status, the lead, custom_fields, then three per custom field
    assert len(parse_form(body, FormLimits(max_groups=19))["leads"]["status"][0]["custom_fields"]) == 5
    with pytest.raises(FormError, match="more than 18 groups"):
        parse_form(body, FormLimits(max_groups=18))


def test_fields_of_other_entities_cost_no_nesting_and_are_kept() -> None:
    deep = "".join(f"[{n}]" for n in range(7))
    body = "&".join(f"x{n}{deep}=1" for n in range(1000)).encode() + b"&leads[status][0][id]=3"
    form = parse_form(body)
    assert len(form) == 1001 and form["x999" + deep] == "1"
    assert [event.lead["id"] for event in lead_events(form)] == ["3"]


def test_containers_made_in_any_field_order_nest_alike() -> None:
    """A container is made from its nearest ancestor made already: the fields of
    leads and custom fields interleaved or reversed nest as they do in order."""
    fields = [
        f"leads[status][{n}][custom_fields][{k}][{part}]={n}{k}"
        for n in range(3) for k in range(3) for part in ("id", "values][0][value", "values][1")
    ] + [f"leads[status][{n}][id]={n + 1}" for n in range(3)]
    in_order = parse_form("&".join(fields).encode())
    interleaved = sorted(fields, key=lambda f: (f.split("][")[-1], f))
    assert parse_form("&".join(interleaved).encode()) == in_order
    assert parse_form("&".join(reversed(fields)).encode()) == in_order
    assert in_order["leads"]["status"][2]["custom_fields"][1] == {
        "id": "21", "values": [{"value": "21"}, "21"]}


def test_a_group_found_from_its_ancestor_still_conflicts_with_a_value() -> None:
    body = b"leads[status][0][id]=1&leads[status][0][tags][0]=x&leads[status][0][tags][0][id]=2"
    with pytest.raises(FormError, match=re.escape("uses 'leads[status][0][tags][0]'")):
        parse_form(body)


def _lead_with_custom_fields(count: int) -> bytes:
    """One lead with `count` custom fields, its UTM source the last of them."""
    pairs = {"leads[status][0][id]": "7", "account[id]": "32145678"}
    for k in range(count):
        code = "UTM_SOURCE" if k == count - 1 else f"F{k}"
        pairs[f"leads[status][0][custom_fields][{k}][id]"] = str(1000 + k)
        pairs[f"leads[status][0][custom_fields][{k}][code]"] = code
        pairs[f"leads[status][0][custom_fields][{k}][values][0][value]"] = f"v{k}"
    return urlencode(pairs).encode()


def test_a_lead_within_the_custom_field_cap_keeps_every_field() -> None:
    cap = amocrm_form.MAX_CUSTOM_FIELDS
    (event,) = lead_events(parse_form(_lead_with_custom_fields(cap)))
    deal = deal_from_event(event)
    assert len(deal.custom_fields) == cap
    assert fields_by_code_or_name(deal)["UTM_SOURCE"].values[0].value == f"v{cap - 1}"


def test_a_lead_over_the_custom_field_cap_is_refused_naming_the_cap_and_kept_whole() -> None:
    cap = amocrm_form.MAX_CUSTOM_FIELDS
    (event,) = lead_events(parse_form(_lead_with_custom_fields(cap + 1)))
    with pytest.raises(FormError) as error:
        deal_from_event(event)
    assert str(error.value) == (
        f"leads[status][0][custom_fields] holds {cap + 1:,} custom fields; a deal takes "
        f"at most {cap} (AmoCRM sends only the filled ones)"
    )
    # The event keeps every field: what is logged is what was sent.
    assert len(event.lead["custom_fields"]) == cap + 1
