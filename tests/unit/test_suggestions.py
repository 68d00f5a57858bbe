"""Suggestions for unknown sales: who a drifted UTM value most likely belongs to, and the rule
change that credits it."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from amoroute.v1 import deal_pb2, router_pb2
from router_svc.rules import decide, parse_rules, parse_rules_yaml
from router_svc.suggestions import apply_change, exact_pattern, normalise, suggest

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
        - name: Aidana
          patterns: ["aidana_*"]
    """
)
RULES = parse_rules_yaml(RULES_YAML)
KNOWN = ("ABC123", "TEST7")


def _won(source: str) -> deal_pb2.Deal:
    field = deal_pb2.CustomField(
        id=1, code="UTM_SOURCE", values=[deal_pb2.CustomFieldValue(value=source)]
    )
    return deal_pb2.Deal(lead_id=1, status_id=142, pipeline_id=10418746, custom_fields=[field])


@pytest.mark.parametrize(
    ("value", "group"),
    [
        (" Kenesary-FB ", "kenesary_fb"),
        ("kenesary fb", "kenesary_fb"),
        ("KENESARY__fb", "kenesary_fb"),
        ("kenesary.fb", "kenesary_fb"),
        ("ref_abc123 ", "ref_abc123"),
        ("Источник  Рекламы", "источник_рекламы"),
    ],
)
def test_sources_that_differ_in_case_separators_or_spaces_group_together(
    value: str, group: str
) -> None:
    assert normalise(value) == group


@pytest.mark.parametrize(
    ("source", "target", "typos", "why"),
    [
        ("Kenesary-FB", "Kenesary", 0, "only in case, separators or spaces"),
        ("kenesary fb", "Kenesary", 0, "only in case, separators or spaces"),
        ("kenesry_fb", "Kenesary", 1, "1 typo away from pattern 'kenesary_*'"),
        ("kenseary_fb", "Kenesary", 1, "1 typo away from pattern 'kenesary_*'"),
        ("kenasery_fb", "Kenesary", 2, "2 typos away from pattern 'kenesary_*'"),
        ("kenesar", "Kenesary", 1, "1 typo away from pattern 'kenesary'"),
        ("aidna_ig", "Aidana", 1, "1 typo away from pattern 'aidana_*'"),
    ],
)
def test_a_drifted_targetologist_source_is_suggested_with_why(
    source: str, target: str, typos: int, why: str
) -> None:
    assert decide(_won(source), RULES).decision == router_pb2.ROUTING_DECISION_UNKNOWN
    best = suggest({"utm_source": source}, RULES, KNOWN)[0]
    assert (best.kind, best.target, best.typos) == ("targetologist", target, typos)
    assert why in best.why and repr(source) in best.why


@pytest.mark.parametrize(
    ("source", "code", "why"),
    [
        ("REF-abc123 ", "ABC123", "only in case, separators or spaces"),
        ("ref abc123", "ABC123", "only in case, separators or spaces"),
        ("ref_ABC123)", "ABC123", "known code ABC123 with stray characters"),
        ("?ref_abc123&x=1", "ABC123", "known code ABC123 with stray characters"),
        ("rfe_ABC123", "ABC123", "prefix mistyped"),
    ],
)
def test_a_mangled_referral_link_is_suggested_as_an_alias(source: str, code: str, why: str) -> None:
    best = suggest({"utm_source": source}, RULES, KNOWN)[0]
    assert (best.kind, best.target) == ("referral", code)
    assert why in best.why
    assert best.change == {"add_referral_alias": {"source": source.strip(), "code": code}}


def test_nothing_close_gives_no_suggestion() -> None:
    assert suggest({"utm_source": "google"}, RULES, KNOWN) == []
    assert suggest({"utm_source": "ref_zzz999x"}, RULES, KNOWN) == []
    assert suggest({"utm_source": "   "}, RULES, KNOWN) == []
    # Short words bear one typo only: "aida" is not Aidana's.
    assert suggest({"utm_source": "kid_fb"}, RULES, KNOWN) == []


def test_a_campaign_is_searched_when_the_rules_search_it() -> None:
    (best,) = suggest({"utm_source": "", "utm_campaign": "Kenesary-Spring"}, RULES, KNOWN)
    assert best.target == "Kenesary" and best.why.startswith("utm_campaign ")


def test_fewest_typos_first_and_one_suggestion_per_target() -> None:
    rules = parse_rules_yaml(RULES_YAML.replace('["aidana_*"]', '["kenesaru_*"]'))
    found = suggest({"utm_source": "kenesaru fb"}, rules, KNOWN)
    assert [(s.target, s.typos) for s in found] == [("Aidana", 0), ("Kenesary", 1)]


@pytest.mark.parametrize("source", ["Kenesary-FB", "kenesry_fb", "kenesary [fb]*"])
def test_applying_a_targetologist_suggestion_credits_the_source(source: str) -> None:
    document = yaml.safe_load(RULES_YAML)
    (best, *_) = suggest({"utm_source": source}, RULES, KNOWN)
    new_rules = parse_rules(apply_change(document, best.change))
    route = decide(_won(source), new_rules)
    assert route.decision == router_pb2.ROUTING_DECISION_TRAFFIC
    assert route.targetologist == "Kenesary"
    # Only the one source is added: the rest of the document is unchanged.
    assert document == yaml.safe_load(RULES_YAML)
    assert decide(_won("kenesary_x"), new_rules).targetologist == "Kenesary"


def test_applying_a_referral_suggestion_credits_the_code_with_its_reason() -> None:
    document = yaml.safe_load(RULES_YAML)
    (best,) = suggest({"utm_source": "REF-abc123 "}, RULES, KNOWN)
    route = decide(_won("REF-abc123 "), parse_rules(apply_change(document, best.change)))
    assert route.decision == router_pb2.ROUTING_DECISION_REFERRAL
    assert route.referral_code == "ABC123"
    assert "is an alias of referral code ABC123" in route.reason


def test_exact_pattern_makes_glob_characters_literal() -> None:
    assert exact_pattern(" Kenesary[FB]* ") == "kenesary[[]fb][*]"


def test_a_change_naming_an_unknown_targetologist_is_refused() -> None:
    change = {"add_pattern": {"targetologist": "Nobody", "pattern": "x"}}
    with pytest.raises(ValueError, match="Nobody"):
        apply_change(yaml.safe_load(RULES_YAML), change)


def test_a_referral_alias_to_a_bad_code_is_refused_naming_the_key() -> None:
    text = RULES_YAML.replace(
        '  fields: [utm_source]\ntraffic', '  fields: [utm_source]\n  aliases: {"x y": "not a code!"}\ntraffic'
    )
    with pytest.raises(ValueError, match=r"referral\.aliases\.x y: must be a referral code"):
        parse_rules_yaml(text)
