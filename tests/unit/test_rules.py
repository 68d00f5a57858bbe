"""Routing rules: parsing and validation, the routing decision, and reloading the file."""

from __future__ import annotations

import json
import logging
import os
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from amoroute.v1 import deal_pb2, router_pb2
from router_svc.rules import (
    DEFAULT_RULES_PATH,
    Rules,
    RulesError,
    RulesFile,
    Targetologist,
    decide,
    decide_twice,
    parse_rules,
    parse_rules_yaml,
    rules_json,
    validate_rules_yaml,
)
from router_svc.rules_versions import diff_to_previous
from router_svc.store import StoredVersion

D = router_pb2.RoutingDecision
REFERRAL, TRAFFIC, BOTH = (
    D.ROUTING_DECISION_REFERRAL,
    D.ROUTING_DECISION_TRAFFIC,
    D.ROUTING_DECISION_BOTH,
)
UNKNOWN, IGNORED = D.ROUTING_DECISION_UNKNOWN, D.ROUTING_DECISION_IGNORED

RULES_YAML = textwrap.dedent(
    """\
    pipelines: [10418746]
    won_status_ids: [142]
    referral:
      prefix: "ref_"
      fields: [utm_source]
    traffic:
      fields: [utm_source, utm_campaign]
      targetologists:
        - name: Kenesary
          patterns: ["kenesary_*", "kenesary"]
          telegram_chat_id: "-1001234567890"
        - name: Aidana
          patterns: ["aidana_*"]
    utm:
      extra_fields: {utm_source: [1402999, "Источник"], utm_campaign: ["Название РК"]}
      url_fields: ["Ссылка на страницу"]
    """
)
RULES = parse_rules_yaml(RULES_YAML)
PIPELINE, WON, LOST = 10418746, 142, 143


def won_deal(
    source: str = "",
    campaign: str = "",
    *,
    status_id: int = WON,
    pipeline_id: int = PIPELINE,
    event: str = "status",
) -> deal_pb2.Deal:
    fields = [
        deal_pb2.CustomField(id=1, code=code, values=[deal_pb2.CustomFieldValue(value=value)])
        for code, value in (("UTM_SOURCE", source), ("UTM_CAMPAIGN", campaign))
        if value
    ]
    return deal_pb2.Deal(
        lead_id=555,
        status_id=status_id,
        pipeline_id=pipeline_id,
        event=event,
        custom_fields=fields,
    )


# --- parsing -------------------------------------------------------------------------------


def test_example_rules_parse_into_typed_rules() -> None:
    assert RULES == Rules(
        pipelines=frozenset({PIPELINE}),
        won_status_ids=frozenset({WON}),
        referral_prefix="ref_",
        referral_fields=("utm_source",),
        traffic_fields=("utm_source", "utm_campaign"),
        targetologists=(
            Targetologist("Kenesary", ("kenesary_*", "kenesary"), "-1001234567890"),
            Targetologist("Aidana", ("aidana_*",), ""),
        ),
        utm_sources=RULES.utm_sources,
    )
    assert dict(RULES.utm_sources.extra_fields) == {
        "source": ("1402999", "Источник"),
        "campaign": ("Название РК",),
    }
    assert RULES.utm_sources.url_fields == ("Ссылка на страницу",)


def test_shipped_rules_file_parses() -> None:
    rules = parse_rules_yaml(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    assert rules.pipelines == {PIPELINE}
    assert rules.won_status_ids == {WON}
    assert [t.name for t in rules.targetologists][0] == "Kenesary"


def test_unquoted_numeric_chat_id_is_read_as_text() -> None:
    text = RULES_YAML.replace('"-1001234567890"', "-1001234567890")
    assert parse_rules_yaml(text).targetologists[0].telegram_chat_id == "-1001234567890"


def test_utm_section_is_optional() -> None:
    text = RULES_YAML.split("utm:\n")[0]
    assert dict(parse_rules_yaml(text).utm_sources.extra_fields) == {}


def _without(key: str) -> str:
    return "\n".join(line for line in RULES_YAML.splitlines() if not line.startswith(key))


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        pytest.param(_without("pipelines"), "pipelines", "required", id="missing_pipelines"),
        pytest.param(
            RULES_YAML.replace("pipelines: [10418746]", "pipelines: []"),
            "pipelines",
            "non-empty list",
            id="empty_pipelines",
        ),
        pytest.param(
            RULES_YAML.replace("won_status_ids: [142]", "won_status_ids: [won]"),
            "won_status_ids[0]",
            "positive integer",
            id="non_int_status",
        ),
        pytest.param(
            RULES_YAML.replace("won_status_ids: [142]", "won_status_ids: [142, true]"),
            "won_status_ids[1]",
            "positive integer",
            id="bool_status",
        ),
        pytest.param(
            RULES_YAML.replace("pipelines: [10418746]", "pipelines: 10418746"),
            "pipelines",
            "list",
            id="pipelines_not_a_list",
        ),
        pytest.param(
            RULES_YAML + "colour: blue\n", "colour", "unknown key", id="unknown_top_level_key"
        ),
        pytest.param(
            RULES_YAML.replace('prefix: "ref_"', 'prefix: ""'),
            "referral.prefix",
            "non-empty string",
            id="empty_prefix",
        ),
        pytest.param(
            RULES_YAML.replace("fields: [utm_source]\n", "fields: [utm_referrer]\n"),
            "referral.fields[0]",
            "must be one of",
            id="unknown_utm_field",
        ),
        pytest.param(
            RULES_YAML.replace('prefix: "ref_"', 'prefix: "ref_"\n  prefx: "r"'),
            "referral.prefx",
            "unknown key",
            id="unknown_nested_key",
        ),
        pytest.param(
            RULES_YAML.replace('["aidana_*"]', '"aidana_*"'),
            "traffic.targetologists[1].patterns",
            "must be a non-empty list of strings",
            id="pattern_not_a_list",
        ),
        pytest.param(
            RULES_YAML.replace('["aidana_*"]', '["aidana_*", 7]'),
            "traffic.targetologists[1].patterns[1]",
            "must be a non-empty string (a shell-style pattern), got 7",
            id="pattern_not_a_string",
        ),
        pytest.param(
            RULES_YAML.replace("name: Aidana", "name: kenesary"),
            "traffic.targetologists[1].name",
            "appears twice",
            id="duplicate_targetologist",
        ),
        pytest.param(
            RULES_YAML.replace('"-1001234567890"', '"my chat"'),
            "traffic.targetologists[0].telegram_chat_id",
            "Telegram chat id",
            id="bad_chat_id",
        ),
        pytest.param(
            RULES_YAML.replace("utm_campaign: [", "utm_foo: ["),
            "utm.extra_fields.utm_foo",
            "must be one of",
            id="unknown_extra_utm_field",
        ),
        pytest.param(
            RULES_YAML.replace('["Ссылка на страницу"]', '[""]'),
            "utm.url_fields[0]",
            "field id or a field name",
            id="blank_url_field",
        ),
        pytest.param("", "rules file", "empty", id="empty_file"),
        pytest.param("- just\n- a list\n", "the rules file", "mapping", id="not_a_mapping"),
        pytest.param("pipelines: [1\n", "YAML", "", id="broken_yaml"),
    ],
)
def test_invalid_rules_raise_an_error_naming_the_key(text: str, key: str, problem: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules_yaml(text)
    message = str(caught.value)
    assert message.startswith(key) or key in message
    assert problem in message


def test_the_stored_json_form_is_itself_a_rules_document_with_the_same_rules() -> None:
    text = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
    stored = json.loads(rules_json(validate_rules_yaml(text)))
    assert parse_rules(stored) == parse_rules_yaml(text)
    assert stored["traffic"]["targetologists"][0] == {
        "name": "Kenesary", "patterns": ["kenesary_*", "kenesary"],
        "telegram_chat_id": "-1001234567890",
    }
    assert "utm" not in stored  # defaults are left out, so it validates again as written


def test_error_message_format_for_operators() -> None:
    text = RULES_YAML.replace('["aidana_*"]', '"aidana_*"')
    with pytest.raises(RulesError, match=r"^traffic\.targetologists\[1\]\.patterns: must be a"):
        parse_rules_yaml(text)


def test_every_problem_is_listed_with_its_path() -> None:
    text = RULES_YAML.replace("won_status_ids: [142]", "won_status_ids: [142, true]").replace(
        '["aidana_*"]', '"aidana_*"'
    ) + "colour: blue\n"
    with pytest.raises(RulesError) as caught:
        parse_rules_yaml(text)
    assert caught.value.problems == (
        ("won_status_ids[1]", "must be a positive integer, got True"),
        ("traffic.targetologists[1].patterns", "must be a non-empty list of strings"),
        ("colour", "unknown key; the rules file allows "
         "pipelines, won_status_ids, referral, traffic, utm"),
    )


def test_a_rules_document_validates_without_yaml() -> None:
    # Rule versions kept elsewhere (JSON in a database) go through the same validation.
    document = yaml.safe_load(RULES_YAML)
    assert parse_rules(document) == RULES
    document["traffic"]["targetologists"][0]["telegram_chat_id"] = "my chat"
    with pytest.raises(RulesError) as caught:
        parse_rules(document)
    assert [path for path, _ in caught.value.problems] == [
        "traffic.targetologists[0].telegram_chat_id"
    ]


def test_a_section_that_is_not_a_mapping_names_its_keys() -> None:
    text = RULES_YAML.replace('referral:\n  prefix: "ref_"\n  fields: [utm_source]\n', "referral: 5\n")
    with pytest.raises(RulesError, match=r"^referral: must be a mapping with keys prefix, fields, aliases$"):
        parse_rules_yaml(text)


# --- deciding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deal", "decision", "referral_code", "targetologist"),
    [
        pytest.param(won_deal("REF_test123"), REFERRAL, "TEST123", "", id="referral_upper_cased"),
        pytest.param(won_deal("ref_"), UNKNOWN, "", "", id="prefix_alone_is_not_a_referral"),
        pytest.param(won_deal("ref_a b"), UNKNOWN, "", "", id="code_with_space_is_not_a_referral"),
        pytest.param(won_deal("ref_" + "a" * 65), UNKNOWN, "", "", id="code_over_64_chars_is_not"),
        pytest.param(won_deal("xref_abc"), UNKNOWN, "", "", id="prefix_must_start_the_value"),
        pytest.param(won_deal("kenesary_fb"), TRAFFIC, "", "Kenesary", id="kenesary_is_traffic"),
        pytest.param(won_deal("KENESARY_FB"), TRAFFIC, "", "Kenesary", id="uppercase_is_traffic"),
        pytest.param(won_deal("Kenesary"), TRAFFIC, "", "Kenesary", id="pattern_without_glob"),
        pytest.param(won_deal("", "aidana_x"), TRAFFIC, "", "Aidana", id="campaign_is_searched"),
        pytest.param(won_deal("ref_abc", "kenesary_x"), BOTH, "ABC", "Kenesary", id="both"),
        pytest.param(won_deal("google_organic"), UNKNOWN, "", "", id="organic_is_unknown"),
        pytest.param(won_deal(), UNKNOWN, "", "", id="no_utm_is_unknown"),
        pytest.param(won_deal("kenesary_fb", status_id=LOST), IGNORED, "", "", id="lost_status"),
        pytest.param(
            won_deal("kenesary_fb", pipeline_id=999), IGNORED, "", "", id="won_in_other_pipeline"
        ),
        pytest.param(won_deal("ref_abc", event="delete"), IGNORED, "", "", id="deleted_deal"),
    ],
)
def test_decision(
    deal: deal_pb2.Deal, decision: int, referral_code: str, targetologist: str
) -> None:
    route = decide(deal, RULES)
    assert (route.decision, route.referral_code, route.targetologist) == (
        decision,
        referral_code,
        targetologist,
    )
    assert route.reason


@pytest.mark.parametrize(
    ("source", "chat_id"),
    [
        pytest.param("kenesary_fb", "-1001234567890", id="configured_chat"),
        pytest.param("aidana_fb", "", id="no_chat_means_notifier_default"),
        pytest.param("google_organic", "", id="nobody_matched"),
    ],
)
def test_route_carries_the_targetologists_chat_id(source: str, chat_id: str) -> None:
    assert decide(won_deal(source), RULES).telegram_chat_id == chat_id


@pytest.mark.parametrize(
    ("deal", "reason"),
    [
        pytest.param(
            won_deal("kenesary_fb"),
            "utm_source 'kenesary_fb' matched Kenesary pattern 'kenesary_*'",
            id="traffic",
        ),
        pytest.param(
            won_deal("google_organic"),
            "no referral code and no targetologist pattern in "
            "utm_source 'google_organic', utm_campaign ''",
            id="unknown",
        ),
        pytest.param(
            won_deal("ref_abc", "kenesary_spring"),
            "utm_source 'ref_abc' carries referral code ABC and "
            "utm_campaign 'kenesary_spring' matched Kenesary pattern 'kenesary_*'",
            id="both",
        ),
        pytest.param(
            won_deal(status_id=80123456),
            "status 80123456 in pipeline 10418746 is not a won status of a configured pipeline",
            id="ignored",
        ),
    ],
)
def test_reason_explains_the_decision(deal: deal_pb2.Deal, reason: str) -> None:
    assert decide(deal, RULES).reason == reason


def test_ignored_deal_still_reports_its_utm() -> None:
    route = decide(won_deal("kenesary_fb", "spring", status_id=LOST), RULES)
    assert route.decision == IGNORED
    assert (route.utm.source, route.utm.campaign) == ("kenesary_fb", "spring")


def test_earlier_traffic_field_wins_over_earlier_targetologist() -> None:
    route = decide(won_deal("aidana_x", "kenesary_y"), RULES)
    assert route.targetologist == "Aidana"


def test_first_targetologist_in_file_order_wins_within_a_field() -> None:
    text = RULES_YAML.replace('["aidana_*"]', '["*_fb"]')
    route = decide(won_deal("kenesary_fb"), parse_rules_yaml(text))
    assert route.targetologist == "Kenesary"


def test_catch_all_pattern_does_not_credit_a_deal_without_utm() -> None:
    text = RULES_YAML.replace('["aidana_*"]', '["*"]')
    assert decide(won_deal(), parse_rules_yaml(text)).decision == UNKNOWN


def test_utm_from_configured_extra_field_is_used_for_routing() -> None:
    deal = won_deal()
    deal.custom_fields.add(
        id=77, name="Источник", values=[deal_pb2.CustomFieldValue(value="kenesary_ig")]
    )
    assert decide(deal, RULES).targetologist == "Kenesary"


# --- deciding under two rules (a what-if) ---------------------------------------------------


def _with_field(deal: deal_pb2.Deal, field_id: int, name: str, value: str) -> deal_pb2.Deal:
    deal.custom_fields.add(id=field_id, name=name, values=[deal_pb2.CustomFieldValue(value=value)])
    return deal


WHAT_IF_DEALS = [
    won_deal("kenesary_fb"),
    won_deal("Kenesary-FB", "aidana_x"),
    won_deal("ref_ABC123"),
    won_deal(),
    _with_field(won_deal(), 77, "Источник", "aidana_fb"),
    _with_field(won_deal(), 78, "Канал", "kenesary_ig"),
    _with_field(won_deal(), 79, "Ссылка на страницу", "https://x.kz/?utm_source=aidana_ig"),
    _with_field(won_deal(), 80, "Лендинг", "https://x.kz/?utm_source=ref_XYZ9"),
    won_deal("kenesary_fb", status_id=LOST),
    won_deal("kenesary_fb", event="delete"),
]


@pytest.mark.parametrize(
    "candidate_yaml",
    [
        # The same UTM extraction, other patterns.
        RULES_YAML.replace('["aidana_*"]', '["aidana_*", "kenesary-fb"]'),
        # Other UTM extraction: another extra field, another landing URL field, none.
        RULES_YAML.replace('"Источник"]', '"Источник", "Канал"]'),
        RULES_YAML.replace('url_fields: ["Ссылка на страницу"]', 'url_fields: ["Лендинг"]'),
        RULES_YAML.split("\nutm:")[0] + "\n",
    ],
)
def test_deciding_twice_decides_as_each_rules_alone(candidate_yaml: str) -> None:
    candidate = parse_rules_yaml(candidate_yaml)
    assert list(decide_twice(WHAT_IF_DEALS, RULES, candidate)) == [
        (decide(deal, RULES), decide(deal, candidate)) for deal in WHAT_IF_DEALS
    ]
    assert list(decide_twice(WHAT_IF_DEALS, candidate, RULES)) == [
        (decide(deal, candidate), decide(deal, RULES)) for deal in WHAT_IF_DEALS
    ]


def test_a_candidate_reading_utm_from_another_field_decides_from_the_deals_fields() -> None:
    deal = _with_field(won_deal(), 78, "Канал", "kenesary_ig")
    candidate = parse_rules_yaml(RULES_YAML.replace('"Источник"]', '"Источник", "Канал"]'))
    [(now, then)] = decide_twice([deal], RULES, candidate)
    assert (now.decision, now.utm.source) == (UNKNOWN, "")
    assert (then.decision, then.targetologist, then.utm.source) == (
        TRAFFIC,
        "Kenesary",
        "kenesary_ig",
    )


# --- reloading -----------------------------------------------------------------------------


def _rewrite(path: Path, text: str) -> None:
    # Linux stamps files with a coarse clock; move mtime on explicitly so a fast rewrite of the
    # same size is still seen as a change.
    before = path.stat().st_mtime_ns
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


def test_rules_file_reloads_after_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES_YAML, encoding="utf-8")
    rules_file = RulesFile(path, check_interval=0)
    assert rules_file.get().won_status_ids == {WON}
    first_loaded_at = rules_file.loaded_at

    _rewrite(path, RULES_YAML.replace("won_status_ids: [142]", "won_status_ids: [142, 150]"))

    assert rules_file.get().won_status_ids == {WON, 150}
    assert rules_file.loaded_at >= first_loaded_at


def test_rules_file_keeps_last_good_rules_when_new_content_is_invalid(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES_YAML, encoding="utf-8")
    rules_file = RulesFile(path, check_interval=0)
    good = rules_file.get()

    _rewrite(path, RULES_YAML.replace("won_status_ids: [142]", "won_status_ids: [won]"))
    with caplog.at_level(logging.ERROR, logger="router_svc.rules"):
        assert rules_file.get() is good
        assert rules_file.get() is good

    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, "a bad file is reported once, not on every check"
    assert "won_status_ids[0]" in errors[0].getMessage()


def test_rules_file_recovers_after_a_deleted_file_comes_back(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES_YAML, encoding="utf-8")
    rules_file = RulesFile(path, check_interval=0)
    path.unlink()
    assert rules_file.get().pipelines == {PIPELINE}

    path.write_text(RULES_YAML.replace("[10418746]", "[1, 2]"), encoding="utf-8")
    assert rules_file.get().pipelines == {1, 2}


def test_rules_file_does_not_stat_within_the_check_interval(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES_YAML, encoding="utf-8")
    rules_file = RulesFile(path, check_interval=3600)
    _rewrite(path, RULES_YAML.replace("[10418746]", "[1]"))
    assert rules_file.get().pipelines == {PIPELINE}


@pytest.mark.parametrize(
    ("content", "error"),
    [
        pytest.param(RULES_YAML.replace("[142]", "[won]"), RulesError, id="invalid_rules"),
        pytest.param(None, OSError, id="missing_file"),
    ],
)
def test_first_load_fails_loudly(
    tmp_path: Path, content: str | None, error: type[Exception]
) -> None:
    path = tmp_path / "rules.yaml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(error):
        RulesFile(path)


@pytest.mark.parametrize(
    ("old_status", "status", "old_pipeline", "pipeline", "reversal"),
    [
        (142, 143, 0, 10418746, True),  # won -> lost
        (142, 80123456, 0, 10418746, True),  # won -> back to work
        (142, 80123456, 10418746, 555, True),  # won, moved to an unconfigured pipeline
        (80123456, 143, 0, 10418746, False),  # never won
        (142, 143, 0, 555, False),  # won in a pipeline nobody routes
        (142, 142, 0, 10418746, False),  # still won: routed, not reversed
    ],
)
def test_a_deal_leaving_won_is_a_reversal(old_status, status, old_pipeline, pipeline, reversal) -> None:  # type: ignore[no-untyped-def]
    rules = parse_rules_yaml(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    deal = deal_pb2.Deal(lead_id=1, status_id=status, old_status_id=old_status,
                         pipeline_id=pipeline, old_pipeline_id=old_pipeline)
    route = decide(deal, rules)
    assert route.reversal is reversal
    if reversal:
        assert route.decision == router_pb2.ROUTING_DECISION_IGNORED
        assert "left the won status" in route.reason


@pytest.mark.parametrize(("event", "needs"), [("status", True), ("api", False)])
def test_won_deal_without_any_utm_asks_for_lead_data_unless_it_came_from_the_api(event, needs) -> None:  # type: ignore[no-untyped-def]
    rules = parse_rules_yaml(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    deal = deal_pb2.Deal(lead_id=24681357, status_id=142, pipeline_id=10418746, event=event)
    route = decide(deal, rules)
    assert route.decision == UNKNOWN
    assert route.needs_lead_data is needs


def test_a_version_diff_is_against_the_version_before_and_the_first_adds_everything() -> None:
    def version(number: int, text: str) -> StoredVersion:
        return StoredVersion(number, text, "{}", datetime.now(UTC), "Dana", "")

    first, second = version(1, "a: 1\nb: 2\n"), version(2, "a: 1\nb: 3\n")
    assert diff_to_previous(None, first).splitlines() == [
        "--- version 0", "+++ version 1", "@@ -0,0 +1,2 @@", "+a: 1", "+b: 2"]
    assert diff_to_previous(first, second).splitlines() == [
        "--- version 1", "+++ version 2", "@@ -1,2 +1,2 @@", " a: 1", "-b: 2", "+b: 3"]
