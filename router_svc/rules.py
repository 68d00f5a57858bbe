"""Routing rules: the YAML rules file, and the pure decision of who earned a deal."""

from __future__ import annotations

import datetime
import fnmatch
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, get_args

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails, PydanticCustomError

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
    """The rules are invalid. `problems` lists every (path, message) found, the path in the
    document's own terms (`traffic.targetologists[1].patterns`; "" for the document as a
    whole); `source` names where the rules came from (a file path), when known."""

    def __init__(self, problems: Sequence[tuple[str, str]], source: str = "") -> None:
        self.problems = tuple(problems)
        self.source = source
        text = "; ".join(f"{path}: {message}" if path else message for path, message in problems)
        super().__init__(f"{source}: {text}" if source else text)


@dataclass(frozen=True)
class Targetologist:
    """An ad manager credited with sales whose UTM value matches one of the patterns."""

    name: str
    patterns: tuple[str, ...]
    telegram_chat_id: str = ""


@dataclass(frozen=True)
class Rules:
    """Validated rules, in the form the decision reads them."""

    pipelines: frozenset[int]
    won_status_ids: frozenset[int]
    referral_prefix: str
    referral_fields: tuple[str, ...]
    traffic_fields: tuple[str, ...]
    targetologists: tuple[Targetologist, ...]
    utm_sources: UtmSources
    # UTM values that stand for a referral code although they do not read prefix + code
    # ("REF-abc123 "), keyed by alias_key(value).
    referral_aliases: Mapping[str, str] = field(default_factory=dict)


# --- the rules document --------------------------------------------------------------------
# The schema of the YAML document. Each value type raises its operator-facing message itself
# (pydantic's own wording names Python types, not what to write in the file); missing and
# unknown keys and a section that is not a mapping are worded in _problem().


def _invalid(message: str, at: tuple[str | int, ...] = ()) -> PydanticCustomError:
    # The message travels in ctx, so braces in a quoted value are not read as a template.
    return PydanticCustomError("rules", "{problem}", {"problem": message, "at": at})


def _positive_id(value: Any) -> int:
    # bool is an int in Python; "yes" in YAML must not become pipeline 1.
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _invalid(f"must be a positive integer, got {value!r}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"must be a non-empty string, got {value!r}")
    return value.strip()


def _utm_field(value: Any) -> str:
    if value not in UTM_FIELDS:
        raise _invalid(f"must be one of {', '.join(UTM_FIELDS)}, got {value!r}")
    return str(value)


def _field_ref(value: Any) -> str:
    """A custom field named by id (an integer) or by its label."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise _invalid(f"must be a field id or a field name, got {value!r}")


def _code(value: Any) -> str:
    if not isinstance(value, str) or not _CODE.fullmatch(value.strip()):
        raise _invalid(f"must be a referral code (letters, digits, _ or -), got {value!r}")
    return value.strip().upper()


def _alias_source(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"must be a non-empty UTM value, got {value!r}")
    return value


def alias_key(source: str) -> str:
    """How a UTM value is compared with referral.aliases: trimmed and case-folded."""
    return source.strip().casefold()


def _pattern(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"must be a non-empty string (a shell-style pattern), got {value!r}")
    return value.strip()


def _chat_id(value: Any) -> str:
    if value is None or value == "":
        return ""
    # An unquoted -1001234567890 arrives as an int; it is still a valid chat id.
    text = ""
    if isinstance(value, str | int) and not isinstance(value, bool):
        text = str(value).strip()
    if not _CHAT_ID.fullmatch(text):
        raise _invalid(
            f'must be a Telegram chat id such as "-1001234567890" or "@channel", got {value!r}'
        )
    return text


def _list_of(what: str, *, allow_empty: bool = False) -> BeforeValidator:
    def check(value: Any) -> Any:
        if not isinstance(value, list) or (not value and not allow_empty):
            article = "a" if allow_empty else "a non-empty"
            raise _invalid(f"must be {article} list of {what}")
        return value

    return BeforeValidator(check)


def _mapping_of(what: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if not isinstance(value, dict):
            raise _invalid(f"must be a mapping of {what}")
        return value

    return BeforeValidator(check)


PositiveId = Annotated[int, BeforeValidator(_positive_id)]
Text = Annotated[str, BeforeValidator(_text)]
UtmField = Annotated[str, BeforeValidator(_utm_field)]
FieldRef = Annotated[str, BeforeValidator(_field_ref)]
Code = Annotated[str, BeforeValidator(_code)]
AliasSource = Annotated[str, BeforeValidator(_alias_source)]
Pattern = Annotated[str, BeforeValidator(_pattern)]
IdList = Annotated[list[PositiveId], _list_of("positive integers")]
UtmFieldList = Annotated[list[UtmField], _list_of(f"UTM fields ({', '.join(UTM_FIELDS)})")]
FieldRefList = Annotated[list[FieldRef], _list_of("field ids or names")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetologistSection(_Section):
    name: Text
    patterns: Annotated[tuple[Pattern, ...], _list_of("strings")]
    telegram_chat_id: Annotated[str, BeforeValidator(_chat_id)] = ""


class ReferralSection(_Section):
    prefix: Text
    fields: UtmFieldList
    # UTM values credited to a code although they are not prefix + code, e.g. a link pasted
    # as "REF-abc123 " ({"REF-abc123 ": "ABC123"}); compared trimmed and case-insensitively.
    aliases: Annotated[dict[AliasSource, Code], _mapping_of("UTM values to referral codes")] = (
        Field(default_factory=dict)
    )


class TrafficSection(_Section):
    fields: UtmFieldList
    # An empty list is allowed: a new account may start with referral routing only.
    targetologists: Annotated[
        list[TargetologistSection], _list_of("targetologists", allow_empty=True)
    ]

    @field_validator("targetologists")
    @classmethod
    def _names_unique(cls, value: list[TargetologistSection]) -> list[TargetologistSection]:
        # Sales are credited by name, so two entries with one name would merge silently.
        seen: set[str] = set()
        for index, person in enumerate(value):
            if person.name.casefold() in seen:
                raise _invalid(f"{person.name!r} appears twice", at=(index, "name"))
            seen.add(person.name.casefold())
        return value


class UtmSection(_Section):
    extra_fields: Annotated[
        dict[UtmField, FieldRefList], _mapping_of("UTM field to field ids or names")
    ] = Field(default_factory=dict)
    url_fields: FieldRefList = Field(default_factory=list)


class RulesDocument(_Section):
    """The routing rules file (router_svc/routing_rules.yaml documents each key)."""

    pipelines: IdList
    won_status_ids: IdList
    referral: ReferralSection
    traffic: TrafficSection
    # `utm:` with nothing under it reads as null: the same as leaving the section out.
    utm: Annotated[UtmSection, BeforeValidator(lambda v: {} if v is None else v)] = Field(
        default_factory=UtmSection
    )


def validate_rules(document: object) -> RulesDocument:
    """Validate a rules document (the mapping a YAML or JSON rules text holds); raise
    RulesError listing every problem, each with the path of the key at fault."""
    try:
        return RulesDocument.model_validate(document)
    except ValidationError as exc:
        raise RulesError([_problem(error) for error in exc.errors()]) from None


def validate_rules_yaml(text: str) -> RulesDocument:
    """validate_rules() of a YAML rules text; RulesError also for text that is not YAML."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError([("", f"not valid YAML: {exc}")]) from exc
    if document is None:
        raise RulesError([("", "the rules file is empty; expected pipelines, won_status_ids, ...")])
    return validate_rules(document)


def rules_json(model: RulesDocument) -> str:
    """The validated document as JSON (values normalised, defaults left out), itself a
    valid rules document: the form stored beside each version's YAML."""
    return model.model_dump_json(exclude_defaults=True)


def parse_rules(document: object) -> Rules:
    """Validate a rules document (the mapping a YAML or JSON rules text holds) into Rules;
    raise RulesError listing every problem, each with the path of the key at fault."""
    return to_rules(validate_rules(document))


def to_rules(model: RulesDocument) -> Rules:
    """A validated document in the form the decision reads it."""
    return Rules(
        pipelines=frozenset(model.pipelines),
        won_status_ids=frozenset(model.won_status_ids),
        referral_prefix=model.referral.prefix,
        referral_fields=tuple(model.referral.fields),
        referral_aliases={alias_key(k): v for k, v in model.referral.aliases.items()},
        traffic_fields=tuple(model.traffic.fields),
        targetologists=tuple(
            Targetologist(t.name, t.patterns, t.telegram_chat_id)
            for t in model.traffic.targetologists
        ),
        utm_sources=UtmSources(
            extra_fields={
                field.removeprefix("utm_"): tuple(refs)
                for field, refs in model.utm.extra_fields.items()
            },
            url_fields=tuple(model.utm.url_fields),
        ),
    )


def parse_rules_yaml(text: str) -> Rules:
    """parse_rules() of a YAML rules text; RulesError also for text that is not YAML."""
    return to_rules(validate_rules_yaml(text))


def _problem(error: ErrorDetails) -> tuple[str, str]:
    """A pydantic error as (path, message) in the rules file's terms."""
    ctx = error.get("ctx") or {}
    # "[key]" marks an error in a mapping's key rather than its value: the path is the key's.
    loc = tuple(part for part in error["loc"] if part != "[key]") + tuple(ctx.get("at", ()))
    path = _path(loc)
    kind = error["type"]
    if kind == "missing":
        return path, "required"
    if kind == "extra_forbidden":
        where = _path(loc[:-1])
        allowed = ", ".join(_section_at(loc[:-1]).model_fields)
        return path, f"unknown key; {where or 'the rules file'} allows {allowed}"
    if kind == "model_type":
        keys = ", ".join(_section_at(loc).model_fields)
        if not path:
            return "", f"the rules file must be a mapping with keys {keys}"
        return path, f"must be a mapping with keys {keys}"
    if kind == "rules":
        return path, str(ctx["problem"])
    return path, error["msg"]


def _path(loc: tuple[str | int, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else part
    return path


def _section_at(loc: tuple[str | int, ...]) -> type[BaseModel]:
    """The section model found at `loc` in the document (list indexes step into the items)."""
    section: type[BaseModel] = RulesDocument
    for part in loc:
        if isinstance(part, str):
            section = _model_in(section.model_fields[part].annotation) or section
    return section


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if found := _model_in(arg):
            return found
    return None


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


def decide(
    deal: deal_pb2.Deal, rules: Rules, utm: deal_pb2.UtmMarks | None = None
) -> router_pb2.Route:
    """Decide who earned the deal: a referral partner, a targetologist, both, or nobody.

    Pure: the same deal and rules always give the same Route. Route.utm is always filled, also
    for ignored deals, so the caller can log what the deal carried. `utm`: the deal's marks
    as extract_utm(deal, rules.utm_sources) reads them, when the caller has them already.
    """
    if utm is None:
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
        utm_field, code, how = referral
        route.referral_code = code
        parts.append(f"{utm_field} {_quote(values[utm_field])} {how} {code}")
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


def decide_twice(
    deals: Iterable[deal_pb2.Deal], current: Rules, candidate: Rules
) -> Iterator[tuple[router_pb2.Route, router_pb2.Route]]:
    """Each deal decided under the rules in force and under candidate rules (a what-if):
    what decide() gives under each."""
    # PERF: when the candidate reads UTM marks from the fields the rules in force read them
    # from, each deal's marks are read once for both decisions; measured by python -m
    # bench.reattribution_preview
    shared = candidate.utm_sources == current.utm_sources
    for deal in deals:
        utm = extract_utm(deal, current.utm_sources)
        yield decide(deal, current, utm), decide(deal, candidate, utm if shared else None)


def _find_referral(values: Mapping[str, str], rules: Rules) -> tuple[str, str, str] | None:
    """(utm field, upper-cased code, how it was found) of the first value that is an alias
    of a code or prefix + a valid code."""
    prefix = rules.referral_prefix.casefold()
    for utm_field in rules.referral_fields:
        value = values[utm_field]
        if rules.referral_aliases and (code := rules.referral_aliases.get(alias_key(value))):
            return utm_field, code, "is an alias of referral code"
        head, rest = value[: len(rules.referral_prefix)], value[len(rules.referral_prefix) :]
        if head.casefold() == prefix and _CODE.fullmatch(rest):
            return utm_field, rest.upper(), "carries referral code"
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
        self._rules, self._text, self._document = self._read()
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

    @property
    def version(self) -> int:
        """Rules read from a file have no stored version: 0."""
        return 0

    def text(self) -> tuple[str, str]:
        """The YAML text of the rules in force and their validated JSON form (rules_json)."""
        self.get()
        with self._lock:
            return self._text, self._document

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

    def _read(self) -> tuple[Rules, str, str]:
        data = self._path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RulesError([("", f"not UTF-8 text ({exc})")], source=str(self._path)) from exc
        try:
            model = validate_rules_yaml(text)
        except RulesError as exc:
            raise RulesError(exc.problems, source=str(self._path)) from exc
        return to_rules(model), text, rules_json(model)

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
            rules, text, document = self._read()
        except (OSError, RulesError) as exc:
            self._log_kept(exc)
            return
        self._rules, self._text, self._document = rules, text, document
        self._loaded_at = time.time()
        log.info("routing rules reloaded from %s", self._path)

    def _log_kept(self, exc: Exception) -> None:
        loaded = datetime.datetime.fromtimestamp(self._loaded_at).isoformat(timespec="seconds")
        log.error("routing rules not reloaded, keeping those loaded at %s: %s", loaded, exc)
