"""Suggestions for a group of UTM marks that belong together (the spellings of one source the
admin's review queue shows as one group), and the rules document that credits them all.

suggestions.suggest() looks at one set of marks; a group of unknown sales holds several
spellings ("Kenesary-FB", "kenesary fb"), and the rule change an operator accepts must credit
every one of them. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from router_svc.rules import Rules, alias_key
from router_svc.suggestions import Suggestion, apply_change, suggest

Change = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class GroupSuggestion:
    """A likely owner of a group's sales: `best` gives the kind, target, reason and typos
    of the best-matching spelling; `changes` credit every spelling that points here, in
    the group's order; `marks_covered` counts those spellings."""

    best: Suggestion
    changes: tuple[Change, ...]
    marks_covered: int


def suggest_for_group(
    group: Sequence[Mapping[str, str]], rules: Rules, known_codes: Iterable[str] = ()
) -> list[GroupSuggestion]:
    """Suggestions for a group of marks ({"utm_source": ...} each), best first: the owner
    more of the spellings point to, then fewest typos, then a referral code before a
    targetologist (as suggest() orders them)."""
    codes = tuple(known_codes)
    found: dict[tuple[str, str], tuple[Suggestion, list[Change], int]] = {}
    for utm in group:
        for item in suggest(utm, rules, codes):
            key = (item.kind, item.target.casefold())
            best, changes, covered = found.get(key, (item, [], 0))
            if item.typos < best.typos:
                best = item
            if not any(_same_change(item.change, seen) for seen in changes):
                changes.append(item.change)
            found[key] = (best, changes, covered + 1)
    order = {"referral": 0, "targetologist": 1}
    ranked = sorted(
        found.values(),
        key=lambda entry: (-entry[2], entry[0].typos, order[entry[0].kind], entry[0].target),
    )
    return [GroupSuggestion(best, tuple(changes), covered) for best, changes, covered in ranked]


def proposed_yaml(document: Mapping[str, Any], changes: Iterable[Change]) -> str:
    """The rules document with every change applied, as YAML in the document's key order."""
    for change in changes:
        document = apply_change(document, change)
    return yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True)


def _same_change(a: Change, b: Change) -> bool:
    # The router compares aliases trimmed and case-folded: "REF-abc123 " and "ref-ABC123"
    # are one alias, and a document holding both is ambiguous.
    if "add_referral_alias" in a and "add_referral_alias" in b:
        return alias_key(a["add_referral_alias"]["source"]) == alias_key(
            b["add_referral_alias"]["source"]
        )
    return a == b
