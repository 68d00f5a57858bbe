"""The review queue's groups (pure): spellings of one source are one group, keyed
unambiguously, the most revenue first; and the router's group suggestions credit every
spelling with one proposed document."""

from datetime import UTC, datetime

import pytest
import yaml

from edge.review_queue import group_key, merge
from edge.review_store import RawGroup
from router_svc.group_suggestions import proposed_yaml, suggest_for_group
from router_svc.rules import decide, parse_rules_yaml
from tests.unit.test_suggestions import RULES, RULES_YAML, _won

T = datetime(2026, 1, 1, tzinfo=UTC)


def raw(source: str | None, campaign: str | None, count: int, revenue: int,
        newest: list[tuple[int, int]], day: int = 1) -> RawGroup:
    at = T.replace(day=day)
    return RawGroup(source, campaign, count, revenue, at, at, newest)


def test_spellings_merge_into_one_group_with_summed_figures_and_newest_leads() -> None:
    groups = merge([
        raw("kenesary fb", None, 1, 50, [(20, 2)], day=3),
        raw("Kenesary-FB", None, 2, 100, [(30, 3), (10, 1)], day=2),
        raw("google", "Brand", 1, 500, [(5, 9)]),
        raw("GOOGLE", "brand", 1, 1, [(6, 8)]),
    ])
    assert [g.key for g in groups] == ["google / brand", "kenesary_fb"]
    kenesary = groups[1]
    assert [v.utm_source for v in kenesary.variants] == ["Kenesary-FB", "kenesary fb"]
    assert (kenesary.count, kenesary.revenue) == (3, 150)
    assert (kenesary.first_seen.day, kenesary.last_seen.day) == (2, 3)
    assert kenesary.newest == [(30, 3), (20, 2), (10, 1)]


@pytest.mark.parametrize(
    ("source", "campaign", "key"),
    [("kenesary_fb", "", "kenesary_fb"), ("kenesary_fb", "june", "kenesary_fb / june"),
     ("", "june", " / june"), ("", "", " / ")],
)
def test_group_keys_tell_source_from_campaign(source: str, campaign: str, key: str) -> None:
    assert group_key(source, campaign) == key


def test_groups_without_marks_and_with_only_a_campaign_stay_apart() -> None:
    keys = {g.key for g in merge([raw(None, None, 1, 1, []), raw(None, "x", 1, 1, []),
                                  raw("x", None, 1, 1, [])])}
    assert keys == {" / ", " / x", "x"}


def test_one_proposed_document_credits_every_spelling_of_a_group() -> None:
    group = [{"utm_source": s} for s in ("Kenesary-FB", "kenesary fb", "google")]
    [best] = suggest_for_group(group, RULES, ())
    assert (best.best.target, best.marks_covered) == ("Kenesary", 2)
    document = proposed_yaml(yaml.safe_load(RULES_YAML), best.changes)
    rules = parse_rules_yaml(document)
    for source in ("Kenesary-FB", "kenesary fb"):
        assert decide(_won(source), rules).targetologist == "Kenesary"
    assert decide(_won("google"), rules).targetologist == ""


def test_aliases_differing_only_in_case_are_proposed_once() -> None:
    group = [{"utm_source": s} for s in ("REF-abc123 ", "ref-ABC123")]
    [best] = suggest_for_group(group, RULES, ("ABC123",))
    assert [c["add_referral_alias"]["source"] for c in best.changes] == ["REF-abc123"]
    assert best.marks_covered == 2
