"""Who an unattributed sale most likely belongs to, and the rule change that would say so.

A won deal whose UTM marks match no rule is routed `unknown`. Real sources drift: a
targetologist types `Kenesary-FB` or `kenesry_fb` where the rules say `kenesary_*`, a referral
link is pasted as `REF-abc123 ` or with stray characters around the code. This module looks at
such marks next to the rules and proposes, with the reason an operator can check, the
targetologist or referral code they are close to, and the one rule change (a pattern for the
targetologist, an alias for the referral code) that would credit them.

Pure: no I/O; the caller passes the rules in force and the referral codes known to exist.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Optimal string alignment: an edit or a swap of two neighbours counts as one typo.
from rapidfuzz.distance import OSA

from amoroute.utm_grouping import SEPARATORS as _SEPARATORS
from amoroute.utm_grouping import normalise
from router_svc.rules import Rules

_GLOB_CHARS = re.compile(r"([*?\[])")
_WILDCARD = re.compile(r"[*?\[]")
# Referral codes as the router accepts them after the prefix (router_svc.rules._CODE).
_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def exact_pattern(value: str) -> str:
    """A pattern matching exactly `value` (lower-cased, as the router compares), with the
    glob characters a source may contain made literal."""
    return _GLOB_CHARS.sub(r"[\1]", value.strip().lower())


@dataclass(frozen=True)
class Suggestion:
    """A likely owner of a sale and the rule change that would credit it.

    kind: "targetologist" or "referral"; target: the targetologist's name or the referral
    code; why: the reason in words; typos: the edit distance behind it (0 for a match that
    differs only in case, separators, spaces or stray characters); change: the rule change,
    `{"add_pattern": {"targetologist": name, "pattern": p}}` or
    `{"add_referral_alias": {"source": s, "code": c}}` (apply_change() applies it).
    """

    kind: str
    target: str
    why: str
    typos: int
    change: Mapping[str, Mapping[str, str]]


def suggest(
    utm: Mapping[str, str], rules: Rules, known_codes: Iterable[str] = ()
) -> list[Suggestion]:
    """Suggestions for a deal routed `unknown` whose marks are `utm` ({"utm_source": ...}),
    best first (fewest typos; a referral before a targetologist on a tie), at most one per
    target. Empty when nothing is close."""
    codes = {code.strip().upper() for code in known_codes if code.strip()}
    found: dict[tuple[str, str], Suggestion] = {}
    for field in rules.referral_fields:
        value = utm.get(field, "")
        if value.strip():
            for item in _referral_suggestions(field, value, rules.referral_prefix, codes):
                _keep_best(found, item)
    for field in rules.traffic_fields:
        value = utm.get(field, "")
        if value.strip():
            for item in _targetologist_suggestions(field, value, rules):
                _keep_best(found, item)
    order = {"referral": 0, "targetologist": 1}
    return sorted(found.values(), key=lambda s: (s.typos, order[s.kind], s.target))


def apply_change(document: Mapping[str, Any], change: Mapping[str, Mapping[str, str]]) -> dict:
    """The rules document (as parsed from YAML) with a suggestion's change applied; the
    input is not modified. Raises ValueError for a change naming an unknown targetologist
    or of an unknown kind."""
    new = _deep_copy(document)
    if "add_pattern" in change:
        name, pattern = change["add_pattern"]["targetologist"], change["add_pattern"]["pattern"]
        for person in new.get("traffic", {}).get("targetologists", []):
            if str(person.get("name", "")).strip().casefold() == name.casefold():
                patterns = person.setdefault("patterns", [])
                if pattern not in patterns:
                    patterns.append(pattern)
                return new
        raise ValueError(f"no targetologist named {name!r} in the rules")
    if "add_referral_alias" in change:
        alias = change["add_referral_alias"]
        aliases = new.setdefault("referral", {}).setdefault("aliases", {})
        aliases[alias["source"]] = alias["code"]
        return new
    raise ValueError(f"unknown rule change {sorted(change)}")


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _deep_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep_copy(item) for item in value]
    return value


def _keep_best(found: dict[tuple[str, str], Suggestion], item: Suggestion) -> None:
    key = (item.kind, item.target.casefold())
    if key not in found or item.typos < found[key].typos:
        found[key] = item


# --- referral codes -------------------------------------------------------------------------


def _referral_suggestions(
    field: str, value: str, prefix: str, codes: set[str]
) -> Iterable[Suggestion]:
    source = value.strip()
    norm_prefix = normalise(prefix)
    norm_value = normalise(source)

    def alias(code: str, why: str, typos: int) -> Suggestion:
        change = {"add_referral_alias": {"source": source, "code": code}}
        return Suggestion("referral", code, f"{field} {source!r} {why}", typos, change)

    # "REF-abc123 ", "ref abc123": the prefix written with other case or separators.
    if norm_value.startswith(norm_prefix):
        rest = norm_value[len(norm_prefix) :]
        # "ref_" must be followed by a separator ("reference" is not "ref_" + "ERENCE").
        if not _SEPARATORS.fullmatch(prefix[-1:]) or rest.startswith("_"):
            code = rest.lstrip("_").upper()
            if _CODE.fullmatch(code) and (code in codes or not codes):
                why = f"differs from '{prefix}{code}' only in case, separators or spaces"
                yield alias(code, why, 0)
                return
    # A known code with stray characters around it: "ref_ABC123)", "?ref_abc123&x".
    for code in sorted(codes):
        wanted = re.escape(norm_prefix) + "_?" + re.escape(code.casefold()) + "(?![a-z0-9])"
        if re.search(wanted, norm_value):
            yield alias(code, f"holds the known code {code} with stray characters", 0)
            return
    # The prefix mistyped: "rfe_ABC123", "ef_ABC123" (only for codes known to exist).
    for code in sorted(codes):
        tail = code.casefold()
        if norm_value.endswith(tail) and len(norm_value) > len(tail):
            head = norm_value[: -len(tail)].strip("_")
            typos = OSA.distance(head, norm_prefix, score_cutoff=1)
            if typos <= 1:
                yield alias(code, f"is '{prefix}{code}' with the prefix mistyped", typos)


# --- targetologists -------------------------------------------------------------------------


def _targetologist_suggestions(field: str, value: str, rules: Rules) -> Iterable[Suggestion]:
    source = value.strip()
    norm_value = normalise(source)
    for person in rules.targetologists:
        best: tuple[int, str, str] | None = None  # (typos, pattern, why)
        for pattern in person.patterns:
            norm_pattern = _normalise_pattern(pattern)
            if fnmatch.fnmatchcase(norm_value, norm_pattern):
                why = f"differs from pattern '{pattern}' only in case, separators or spaces"
                best = (0, pattern, why)
                break
            typos = _typos_from(norm_value, norm_pattern)
            if typos is not None and (best is None or typos < best[0]):
                plural = "typo" if typos == 1 else "typos"
                best = (typos, pattern, f"is {typos} {plural} away from pattern '{pattern}'")
        if best is not None:
            typos, _pattern, why = best
            change = {
                "add_pattern": {"targetologist": person.name, "pattern": exact_pattern(source)}
            }
            why = f"{field} {source!r} {why}"
            yield Suggestion("targetologist", person.name, why, typos, change)


def _normalise_pattern(pattern: str) -> str:
    """A pattern in normalise()'s terms: trimmed, case-folded, separators as `_`; its
    wildcards kept."""
    return _SEPARATORS.sub("_", pattern.strip().casefold())


def _typos_from(value: str, pattern: str) -> int | None:
    """Edits between `value` and the literal head of `pattern` (what comes before its first
    wildcard), when the rest of `value` fits the rest of the pattern; None when more than a
    short word can bear (1 typo under 6 letters, 2 from 6 on) or nothing fits."""
    head, wildcard, rest = pattern.partition("*")
    if _WILDCARD.search(head) or not head:
        return None
    allowed = 1 if len(head.strip("_")) < 6 else 2
    if not wildcard:
        typos = OSA.distance(value, head, score_cutoff=allowed)
        return typos if 0 < typos <= allowed else None
    best: int | None = None
    for cut in range(max(0, len(head) - allowed), min(len(value), len(head) + allowed) + 1):
        if not fnmatch.fnmatchcase(value[cut:], "*" + rest):
            continue
        typos = OSA.distance(value[:cut], head, score_cutoff=allowed)
        if 0 < typos <= allowed and (best is None or typos < best):
            best = typos
    return best
