"""Routing rules: the YAML rules file, and the pure decision of who earned a deal."""

from __future__ import annotations

import datetime
import fnmatch
import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from amoroute.v1 import deal_pb2, router_pb2
from router_svc.utm import UTM_KEYS, UtmSources, extract_utm

log = logging.getLogger(__name__)

DEFAULT_RULES_PATH = Path(__file__).with_name("routing_rules.yaml")

UTM_FIELDS = tuple(f"utm_{key}" for key in UTM_KEYS)
_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A numeric chat id ("-1001234567890") or a public @channel name, as the Bot API accepts.
_CHAT_ID = re.compile(r"-?\d+|@[A-Za-z][A-Za-z0-9_]{3,31}")
_REASON_VALUE_CHARS = 80

Decision = router_pb2.RoutingDecision


class RulesError(ValueError):
    """The rules file is invalid; the message names the offending key."""


@dataclass(frozen=True)
class Targetologist:
    """An ad manager credited with sales whose UTM value matches one of the patterns."""

    name: str
    patterns: tuple[str, ...]
    telegram_chat_id: str = ""


@dataclass(frozen=True)
class Rules:
    """A validated rules file."""

    pipelines: frozenset[int]
    won_status_ids: frozenset[int]
    referral_prefix: str
    referral_fields: tuple[str, ...]
    traffic_fields: tuple[str, ...]
    targetologists: tuple[Targetologist, ...]
    utm_sources: UtmSources


# --- parsing -------------------------------------------------------------------------------


def parse_rules(text: str) -> Rules:
    """Parse and validate a rules file; raise RulesError naming the first offending key."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"not valid YAML: {exc}") from exc
    if data is None:
        raise RulesError("the rules file is empty; expected pipelines, won_status_ids, ...")
    top = _mapping(
        data, "", required=("pipelines", "won_status_ids", "referral", "traffic"), optional=("utm",)
    )
    referral = _mapping(top["referral"], "referral", required=("prefix", "fields"))
    traffic = _mapping(top["traffic"], "traffic", required=("fields", "targetologists"))
    return Rules(
        pipelines=frozenset(_id_list(top["pipelines"], "pipelines")),
        won_status_ids=frozenset(_id_list(top["won_status_ids"], "won_status_ids")),
        referral_prefix=_text(referral["prefix"], "referral.prefix"),
        referral_fields=_utm_field_list(referral["fields"], "referral.fields"),
        traffic_fields=_utm_field_list(traffic["fields"], "traffic.fields"),
        targetologists=_targetologists(traffic["targetologists"], "traffic.targetologists"),
        utm_sources=_utm_sources(top.get("utm"), "utm"),
    )


def _key(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _mapping(
    value: Any, path: str, *, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()
) -> Mapping[str, Any]:
    where = path or "the rules file"
    if not isinstance(value, dict):
        raise RulesError(f"{where}: must be a mapping with keys {', '.join(required + optional)}")
    allowed = required + optional
    for key in value:
        if key not in allowed:
            raise RulesError(
                f"{_key(path, str(key))}: unknown key; {where} allows {', '.join(allowed)}"
            )
    for key in required:
        if key not in value:
            raise RulesError(f"{_key(path, key)}: required")
    return value


def _list(value: Any, path: str, what: str, *, allow_empty: bool = False) -> list[Any]:
    if not isinstance(value, list) or (not value and not allow_empty):
        article = "a" if allow_empty else "a non-empty"
        raise RulesError(f"{path}: must be {article} list of {what}")
    return value


def _id_list(value: Any, path: str) -> list[int]:
    items = _list(value, path, "positive integers")
    for index, item in enumerate(items):
        # bool is an int in Python; "yes" in YAML must not become pipeline 1.
        if isinstance(item, bool) or not isinstance(item, int) or item <= 0:
            raise RulesError(f"{_key(path, index)}: must be a positive integer, got {item!r}")
    return items


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RulesError(f"{path}: must be a non-empty string, got {value!r}")
    return value.strip()


def _utm_field(value: Any, path: str) -> str:
    if value not in UTM_FIELDS:
        raise RulesError(f"{path}: must be one of {', '.join(UTM_FIELDS)}, got {value!r}")
    return str(value)


def _utm_field_list(value: Any, path: str) -> tuple[str, ...]:
    items = _list(value, path, f"UTM fields ({', '.join(UTM_FIELDS)})")
    return tuple(_utm_field(item, _key(path, i)) for i, item in enumerate(items))


def _field_ref(value: Any, path: str) -> str:
    """A custom field named by id (an integer) or by its label."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise RulesError(f"{path}: must be a field id or a field name, got {value!r}")


def _field_ref_list(value: Any, path: str) -> tuple[str, ...]:
    items = _list(value, path, "field ids or names")
    return tuple(_field_ref(item, _key(path, i)) for i, item in enumerate(items))


def _targetologists(value: Any, path: str) -> tuple[Targetologist, ...]:
    # An empty list is allowed: a new account may start with referral routing only.
    items = _list(value, path, "targetologists", allow_empty=True)
    result: list[Targetologist] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = _key(path, index)
        entry = _mapping(item, where, required=("name", "patterns"), optional=("telegram_chat_id",))
        name = _text(entry["name"], f"{where}.name")
        if name.casefold() in seen:
            # Sales are credited by name, so two entries with one name would merge silently.
            raise RulesError(f"{where}.name: {name!r} appears twice")
        seen.add(name.casefold())
        patterns = entry["patterns"]
        if (
            not isinstance(patterns, list)
            or not patterns
            or not all(isinstance(p, str) and p.strip() for p in patterns)
        ):
            raise RulesError(f"{where}.patterns: must be a non-empty list of strings")
        result.append(
            Targetologist(
                name=name,
                patterns=tuple(p.strip() for p in patterns),
                telegram_chat_id=_chat_id(
                    entry.get("telegram_chat_id"), f"{where}.telegram_chat_id"
                ),
            )
        )
    return tuple(result)


def _chat_id(value: Any, path: str) -> str:
    if value is None or value == "":
        return ""
    # An unquoted -1001234567890 arrives as an int; it is still a valid chat id.
    text = ""
    if isinstance(value, str | int) and not isinstance(value, bool):
        text = str(value).strip()
    if not _CHAT_ID.fullmatch(text):
        raise RulesError(
            f'{path}: must be a Telegram chat id such as "-1001234567890" or "@channel", '
            f"got {value!r}"
        )
    return text


def _utm_sources(value: Any, path: str) -> UtmSources:
    if value is None:
        return UtmSources()
    section = _mapping(value, path, optional=("extra_fields", "url_fields"))
    extra: dict[str, tuple[str, ...]] = {}
    if "extra_fields" in section:
        extra_path = _key(path, "extra_fields")
        extra_map = section["extra_fields"]
        if not isinstance(extra_map, dict):
            raise RulesError(f"{extra_path}: must be a mapping of UTM field to field ids or names")
        for utm_field, refs in extra_map.items():
            key_path = _key(extra_path, str(utm_field))
            key = _utm_field(utm_field, key_path).removeprefix("utm_")
            extra[key] = _field_ref_list(refs, key_path)
    url_fields: tuple[str, ...] = ()
    if "url_fields" in section:
        url_fields = _field_ref_list(section["url_fields"], _key(path, "url_fields"))
    return UtmSources(extra_fields=extra, url_fields=url_fields)


# --- deciding ------------------------------------------------------------------------------


def left_won(deal: deal_pb2.Deal, rules: Rules) -> bool:
    """A status change out of a won status of a configured pipeline (to a lost
    status, back to work, or into another pipeline)."""
    old_pipeline = deal.old_pipeline_id or deal.pipeline_id
    return (
        old_pipeline in rules.pipelines
        and deal.old_status_id in rules.won_status_ids
        and not (deal.pipeline_id in rules.pipelines and deal.status_id in rules.won_status_ids)
    )


def decide(deal: deal_pb2.Deal, rules: Rules) -> router_pb2.Route:
    """Decide who earned the deal: a referral partner, a targetologist, both, or nobody.

    Pure: the same deal and rules always give the same Route. Route.utm is always filled, also
    for ignored deals, so the caller can log what the deal carried.
    """
    utm = extract_utm(deal, rules.utm_sources)
    route = router_pb2.Route(utm=utm)
    if deal.event == "delete":
        route.decision = Decision.ROUTING_DECISION_IGNORED
        route.reason = f"lead {deal.lead_id} was deleted"
        return route
    if deal.pipeline_id not in rules.pipelines or deal.status_id not in rules.won_status_ids:
        route.decision = Decision.ROUTING_DECISION_IGNORED
        if left_won(deal, rules):
            route.reversal = True
            route.reason = (
                f"lead {deal.lead_id} left the won status "
                f"({deal.old_status_id} -> {deal.status_id}): its credits are reversed"
            )
            return route
        route.reason = (
            f"status {deal.status_id} in pipeline {deal.pipeline_id} "
            "is not a won status of a configured pipeline"
        )
        return route

    values = {f"utm_{key}": getattr(utm, key) for key in UTM_KEYS}
    referral = _find_referral(values, rules)
    traffic = _find_targetologist(values, rules)
    parts: list[str] = []
    if referral:
        utm_field, code = referral
        route.referral_code = code
        parts.append(f"{utm_field} {_quote(values[utm_field])} carries referral code {code}")
    if traffic:
        utm_field, person, pattern = traffic
        route.targetologist = person.name
        route.telegram_chat_id = person.telegram_chat_id
        value = _quote(values[utm_field])
        parts.append(f"{utm_field} {value} matched {person.name} pattern {_quote(pattern)}")

    if referral and traffic:
        route.decision = Decision.ROUTING_DECISION_BOTH
    elif referral:
        route.decision = Decision.ROUTING_DECISION_REFERRAL
    elif traffic:
        route.decision = Decision.ROUTING_DECISION_TRAFFIC
    else:
        route.decision = Decision.ROUTING_DECISION_UNKNOWN
        if deal.event != "api" and not any(values.values()):
            route.needs_lead_data = True
            route.reason = (
                f"won lead {deal.lead_id} carries no UTM marks: "
                "its data is to be read from the AmoCRM API"
            )
            return route
        searched = dict.fromkeys(rules.referral_fields + rules.traffic_fields)
        shown = ", ".join(f"{name} {_quote(values[name])}" for name in searched)
        parts.append(f"no referral code and no targetologist pattern in {shown}")
    route.reason = " and ".join(parts)
    return route


def _find_referral(values: Mapping[str, str], rules: Rules) -> tuple[str, str] | None:
    """(utm field, upper-cased code) of the first value that is prefix + a valid code."""
    prefix = rules.referral_prefix.casefold()
    for utm_field in rules.referral_fields:
        value = values[utm_field]
        head, rest = value[: len(rules.referral_prefix)], value[len(rules.referral_prefix) :]
        if head.casefold() == prefix and _CODE.fullmatch(rest):
            return utm_field, rest.upper()
    return None


def _find_targetologist(
    values: Mapping[str, str], rules: Rules
) -> tuple[str, Targetologist, str] | None:
    """(utm field, targetologist, pattern) of the first match; fields first, then file order."""
    for utm_field in rules.traffic_fields:
        value = values[utm_field].lower()
        if not value:  # a "*" pattern must not credit a deal that has no UTM at all
            continue
        for person in rules.targetologists:
            for pattern in person.patterns:
                if fnmatch.fnmatchcase(value, pattern.lower()):
                    return utm_field, person, pattern
    return None


def _quote(value: str) -> str:
    if len(value) > _REASON_VALUE_CHARS:
        value = value[:_REASON_VALUE_CHARS] + "…"
    return f"'{value}'"


# --- the rules file ------------------------------------------------------------------------


class RulesFile:
    """Holds the rules from a path and reloads them when the file changes.

    The file is checked (os.stat: mtime, size, inode) at most once per `check_interval`
    seconds. A file that fails to parse on reload is logged and the last good rules stay in
    force; the first load raises RulesError/OSError so a process with bad rules fails at start.
    Thread-safe.
    """

    def __init__(self, path: str | Path, check_interval: float = 1.0) -> None:
        self._path = Path(path)
        self._check_interval = check_interval
        self._lock = threading.Lock()
        signature = self._stat()
        self._rules = self._read()
        self._signature: tuple[int, int, int] | None = signature
        self._loaded_at = time.time()
        self._checked_at = time.monotonic()

    @property
    def path(self) -> Path:
        """The rules file being watched."""
        return self._path

    @property
    def loaded_at(self) -> float:
        """time.time() of the last successful load."""
        return self._loaded_at

    def get(self) -> Rules:
        """The current rules, reloading them first if the file changed."""
        if time.monotonic() - self._checked_at >= self._check_interval:
            with self._lock:
                if time.monotonic() - self._checked_at >= self._check_interval:
                    self._reload_if_changed()
                    self._checked_at = time.monotonic()
        return self._rules

    def _stat(self) -> tuple[int, int, int]:
        st = os.stat(self._path)
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _read(self) -> Rules:
        data = self._path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RulesError(f"{self._path}: not UTF-8 text ({exc})") from exc
        try:
            return parse_rules(text)
        except RulesError as exc:
            raise RulesError(f"{self._path}: {exc}") from exc

    def _reload_if_changed(self) -> None:
        # Stat before reading: a write landing in between changes the signature again, so the
        # next check picks it up instead of missing it. A problem is logged once per signature,
        # not on every check.
        try:
            signature: tuple[int, int, int] | None = self._stat()
        except OSError as exc:
            if self._signature is not None:
                self._signature = None
                self._log_kept(exc)
            return
        if signature == self._signature:
            return
        self._signature = signature
        try:
            rules = self._read()
        except (OSError, RulesError) as exc:
            self._log_kept(exc)
            return
        self._rules = rules
        self._loaded_at = time.time()
        log.info("routing rules reloaded from %s", self._path)

    def _log_kept(self, exc: Exception) -> None:
        loaded = datetime.datetime.fromtimestamp(self._loaded_at).isoformat(timespec="seconds")
        log.error("routing rules not reloaded, keeping those loaded at %s: %s", loaded, exc)
