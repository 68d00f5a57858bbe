"""AmoCRM webhook bodies: PHP-style bracket form -> lead events -> Deal protos.

Pure: no I/O, and of Falcon only its compiled form decoder (strings in, a dict out), so the
webhook resource, the replay worker and the tests share one parser. Every limit is enforced
before the work it guards, so a hostile body costs at most two passes over its bytes (the
compiled decoder, then the strict one for a body it declines).

Decisions the callers rely on:
- A name whose brackets are malformed (`a[b`, `a]b[`, `a[b]c`) is kept whole as one literal
  top-level key; it never reaches `leads`, so it is ignored rather than rejected.
- `key[]` appends (PHP), numeric segments are canonical decimals (`0`, `12`, not `012`); a
  container whose keys are all numeric becomes a list ordered by index, otherwise a dict with
  string keys.
- Prices: digits with an optional `.fraction` (rounded half up to whole units), thousands
  separated by spaces (`12 000`, also no-break spaces) are accepted; commas are rejected as
  ambiguous (`12,000` vs `12,50`).
- Timestamps that are empty or `0` count as absent.
"""

from __future__ import annotations

import copy
import functools
import html
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

# Falcon's form decoder only (compiled with Cython in its wheels): plain strings in
# and out, none of the framework's request machinery.
from falcon.uri import parse_query_string
from google.protobuf.timestamp_pb2 import Timestamp

from amoroute.v1 import deal_pb2

LEAD_ACTIONS = frozenset({"status", "add", "update", "delete", "restore", "responsible", "note"})

_INT64_MAX = 2**63 - 1
# protobuf Timestamp cannot represent anything after 9999-12-31T23:59:59Z.
_MAX_UNIX_SECONDS = 253_402_300_799

_KEY_RE = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_SEGMENT_RE = re.compile(r"\[([^\[\]]*)\]")
_INDEX_RE = re.compile(r"0|[1-9][0-9]*")
_INT_RE = re.compile(r"-?[0-9]+")
_PRICE_RE = re.compile(
    r"(?P<whole>[0-9]+|[0-9]{1,3}(?:[ \u00a0\u202f][0-9]{3})+)(?:\.(?P<fraction>[0-9]+))?"
)


@dataclass(frozen=True)
class FormLimits:
    """Bounds on one webhook body; the defaults leave ample room for AmoCRM's batches."""

    max_body_bytes: int = 1_048_576
    max_keys: int = 20_000
    max_depth: int = 8
    max_index: int = 10_000
    max_leads: int = 500


DEFAULT_LIMITS = FormLimits()


class FormError(ValueError):
    """The body cannot be parsed; the message says why in words an operator understands."""


@dataclass(frozen=True)
class LeadEvent:
    """One lead of one action of a webhook, with the account that sent it."""

    action: str
    # Position among the action's leads: N in leads[action][N] for AmoCRM's dense numbering.
    index: int
    lead: dict[str, Any]
    account: dict[str, Any]

    @property
    def where(self) -> str:
        """The bracket path of this lead in the body, e.g. `leads[status][0]`."""
        return f"leads[{self.action}][{self.index}]"

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable: {"action", "index", "lead", "account"}. Shares the
        event's lead and account dicts (no copy: a webhook's events are logged
        as they are; nothing changes them after parsing)."""
        return {
            "action": self.action,
            "index": self.index,
            "lead": self.lead,
            "account": self.account,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LeadEvent:
        """Rebuild an event stored with `to_json`; FormError when the shape is wrong."""
        if not isinstance(data, dict):
            raise FormError("stored lead event is not a JSON object")
        action = data.get("action")
        index = data.get("index")
        lead = data.get("lead")
        account = data.get("account", {})
        if action not in LEAD_ACTIONS:
            raise FormError(f"stored lead event has unknown action {_show(action)}")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise FormError(f"stored lead event has invalid index {_show(index)}")
        if not isinstance(lead, dict) or not isinstance(account, dict):
            raise FormError("stored lead event needs 'lead' and 'account' objects")
        return cls(action, index, copy.deepcopy(lead), copy.deepcopy(account))


class _Node(dict[Any, Any]):
    """A container while parsing; remembers the next index for PHP's `key[]`
    append, and whether any of its keys is a name (then it becomes a dict,
    otherwise a list ordered by index)."""

    __slots__ = ("next_index", "named")

    def __init__(self) -> None:
        super().__init__()
        self.next_index = 0
        self.named = False


def parse_form(body: bytes, limits: FormLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Decode an application/x-www-form-urlencoded body with PHP-style bracket keys.

    Returns nested dicts and lists of strings. Raises FormError on: body over the limit, empty
    body, invalid UTF-8 (after percent-decoding), too many fields, too deep or too large an
    index, and a name used both as a value and as a group (`a=1&a[b]=2`). Repeated names: the
    last value wins.
    """
    if len(body) > limits.max_body_bytes:
        raise FormError(
            f"body is {len(body):,} bytes; the limit is {limits.max_body_bytes:,} bytes"
        )
    fields = _compiled_fields(body, limits)
    if fields is not None:
        try:
            return _nest(fields.items(), limits)
        except FormError:
            pass  # the field-by-field pass below names the first bad field
    return _nest(_fields(body, limits), limits)


def _compiled_fields(body: bytes, limits: FormLimits) -> dict[str, str] | None:
    """Every field of a well-formed body, decoded by Falcon's compiled form decoder
    (a tenth of the pure-Python pass on AmoCRM's batches); None for a body the
    field-by-field pass must judge: one with repeated names (Falcon groups them, which
    loses their order), a replacement or NUL character (Falcon replaces invalid UTF-8
    silently, and stored text cannot hold NUL), or too many separators to be within
    the field limit for sure."""
    if body.count(b"&") >= limits.max_keys:
        return None
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        return None
    fields = parse_query_string(text, keep_blank=True)
    fields.pop("", None)  # nameless pairs (`=x`) are skipped
    if any(type(value) is not str for value in fields.values()):
        return None
    keys, values = "".join(fields), "".join(fields.values())  # type: ignore[arg-type]
    for suspect in ("\ufffd", "\x00"):
        if suspect in keys or suspect in values:
            return None
    return fields  # type: ignore[return-value]


def _fields(body: bytes, limits: FormLimits) -> Iterator[tuple[str, str]]:
    """Each (name, value) of the body in order, decoded strictly: FormError names the
    first field that is not UTF-8, and a body that has no fields at all."""
    pairs = [pair for pair in bytes(body).split(b"&") if pair]
    if not pairs:
        raise FormError("body is empty: expected AmoCRM webhook fields such as leads[...][0][id]")
    if len(pairs) > limits.max_keys:
        raise FormError(f"body has {len(pairs):,} fields; the limit is {limits.max_keys:,}")
    for number, pair in enumerate(pairs, 1):
        raw_key, _, raw_value = pair.partition(b"=")
        try:
            key = _name(raw_key)
        except UnicodeDecodeError as exc:
            raise _not_utf8(f"name of field #{number}", exc) from None
        if key:
            try:
                yield key, _decode(raw_value)
            except UnicodeDecodeError as exc:
                raise _not_utf8(f"value of {_show(key)}", exc) from None


def _nest(fields: Iterable[tuple[str, str]], limits: FormLimits) -> dict[str, Any]:
    """Fields in body order -> the nested structure their bracket names describe."""
    root = _Node()
    # The container each name's value goes into, by the name's path without its last
    # segment: a lead's fields share one, so most fields skip the walk from the root.
    parents: dict[tuple[str | int | None, ...], _Node] = {}
    for key, value in fields:
        # Counting '[' first bounds the regex and path work on absurd names.
        if key.count("[") > limits.max_depth:
            raise FormError(f"field {_show(key)} is nested deeper than {limits.max_depth} levels")
        path, parent_path = _field(key)
        node = parents.get(parent_path) if parent_path is not None else None
        if node is None:
            node = _walk(root, key, path, limits)
            if parent_path is not None:
                parents[parent_path] = node
        slot = _slot(node, key, path[-1], limits)
        if type(node.get(slot)) is _Node:
            raise _conflict(key, path, len(path) - 1)
        node[slot] = value
    if not root:
        raise FormError("body has no named fields")
    return {key: value if type(value) is str else _finish(value) for key, value in root.items()}


def lead_events(form: dict[str, Any], limits: FormLimits = DEFAULT_LIMITS) -> list[LeadEvent]:
    """Every lead of every action, actions in body order and leads in index order.

    Ignores contacts, task, unsorted and unknown actions. Raises FormError when a lead has no
    positive integer `id`, when `leads` is not shaped like leads[action][N][...], or when
    there are more than `limits.max_leads` leads. Returns [] when the body has no leads.
    """
    leads = form.get("leads")
    if leads is None:
        return []
    if not isinstance(leads, dict):
        raise FormError("'leads' must hold actions, e.g. leads[status][0][id]=...")
    account = form.get("account")
    account = account if isinstance(account, dict) else {}
    events: list[LeadEvent] = []
    for action, items in leads.items():
        if action not in LEAD_ACTIONS:
            continue
        if not isinstance(items, list):
            raise FormError(f"leads[{action}] must be a numbered list, e.g. leads[{action}][0][id]")
        for index, lead in enumerate(items):
            where = f"leads[{action}][{index}]"
            if not isinstance(lead, dict):
                raise FormError(f"{where} is not a lead: expected fields such as {where}[id]")
            _lead_id(lead, where)
            if len(events) == limits.max_leads:
                raise FormError(f"body carries more than {limits.max_leads} leads")
            events.append(LeadEvent(action, index, lead, account))
    return events


def deal_from_event(event: LeadEvent) -> deal_pb2.Deal:
    """Map one lead event to a Deal proto; FormError names the first field that is wrong."""
    lead, where = event.lead, event.where
    if not isinstance(lead, dict):
        raise FormError(f"{where} is not a lead")

    def number(name: str) -> int:
        return _int(lead.get(name), where, name)

    deal = deal_pb2.Deal(
        lead_id=_lead_id(lead, where),
        name=_text(lead.get("name"), where, "name"),
        status_id=number("status_id"),
        old_status_id=number("old_status_id"),
        pipeline_id=number("pipeline_id"),
        old_pipeline_id=number("old_pipeline_id"),
        price=_price(lead.get("price"), where, "price"),
        account_id=number("account_id") or _int(event.account.get("id"), "account", "id"),
        account_subdomain=_text(event.account.get("subdomain"), "account", "subdomain"),
        responsible_user_id=number("responsible_user_id"),
        event=event.action,
    )
    # Filled in place: a message passed to a constructor is copied.
    _add_custom_fields(deal, lead.get("custom_fields"), f"{where}[custom_fields]")
    _add_tags(deal, lead.get("tags"), f"{where}[tags]")
    _set_time(deal.created_at, lead, ("created_at", "date_create"), where)
    _set_time(deal.updated_at, lead, ("updated_at", "last_modified"), where)
    return deal


def _decode(raw: bytes) -> str:
    """Percent- and plus-decoded UTF-8; UnicodeDecodeError when it is not UTF-8."""
    raw = raw.replace(b"+", b" ")
    # Most values (ids, statuses, Latin text) have nothing to unquote.
    text = (unquote_to_bytes(raw) if b"%" in raw else raw).decode("utf-8")
    # AmoCRM never sends NUL, and PostgreSQL text cannot hold it: keep it visible.
    return text.replace("\x00", "\ufffd")


@functools.lru_cache(maxsize=4096)
def _name(raw: bytes) -> str:
    """A field name decoded. Every webhook repeats the same few hundred names:
    each is decoded once."""
    return _decode(raw)


def _not_utf8(what: str, exc: UnicodeDecodeError) -> FormError:
    return FormError(f"{what} is not valid UTF-8 text (bad byte at position {exc.start})")


def _walk(
    root: _Node, key: str, path: tuple[str | int | None, ...], limits: FormLimits
) -> _Node:
    """The container for the last segment of `path`, created on the way as needed."""
    node = root
    for depth in range(len(path) - 1):
        slot = _slot(node, key, path[depth], limits)
        existing = node.get(slot)
        if type(existing) is _Node:
            node = existing
        elif existing is None:
            child = _Node()
            node[slot] = child
            node = child
        else:
            raise _conflict(key, path, depth)
    return node


def _slot(node: _Node, key: str, segment: str | int | None, limits: FormLimits) -> str | int:
    """Where `segment` goes in `node`: a name as it is, an index (or the next one for
    `[]`) within the limit."""
    if type(segment) is str:
        node.named = True
        return segment
    # An index, or None for `[]` (append); the top-level name is always text.
    slot: int = node.next_index if segment is None else segment  # type: ignore[assignment]
    if slot > limits.max_index:
        raise FormError(f"field {_show(key)} has an index above the limit of {limits.max_index:,}")
    if slot >= node.next_index:
        node.next_index = slot + 1
    return slot


@functools.lru_cache(maxsize=4096)
def _field(key: str) -> tuple[tuple[str | int | None, ...], tuple[str | int | None, ...] | None]:
    """A field name's path, and the path of its container: None when `[]` makes
    each use of the name a new container, so it cannot be remembered. Every
    webhook repeats the same few hundred names, so each is split once."""
    path = _path(key)
    parent = path[:-1]
    return path, (None if None in parent else parent)


def _path(key: str) -> tuple[str | int | None, ...]:
    """leads[status][0][id] -> ("leads", "status", 0, "id"); `[]` -> None. A
    canonical decimal segment becomes its int (the top-level name stays text)."""
    match = _KEY_RE.fullmatch(key)
    if match is None:
        return (key,)
    return (match[1], *map(_segment, _SEGMENT_RE.findall(match[2])))


# Above any index limit: an index segment too long to be worth converting.
_HUGE_INDEX = 10**19


def _segment(text: str) -> str | int | None:
    if text == "":
        return None
    if _INDEX_RE.fullmatch(text):
        # Length first: int() of a huge digit string is slow.
        return int(text) if len(text) <= 19 else _HUGE_INDEX
    return text


def _conflict(key: str, path: tuple[str | int | None, ...], depth: int) -> FormError:
    prefix = str(path[0]) + "".join(
        f"[{'' if segment is None else segment}]" for segment in path[1 : depth + 1]
    )
    return FormError(
        f"field {_show(key)} uses {_show(prefix)} both as a value and as a group of fields"
    )


def _finish(node: _Node) -> dict[str, Any] | list[Any]:
    """A container as plain dicts and lists (the values are strings)."""
    if node.named:
        return {
            key if type(key) is str else str(key): child if type(child) is str else _finish(child)
            for key, child in node.items()
        }
    return [
        child if type(child) is str else _finish(child)
        for child in (node[key] for key in sorted(node))
    ]


def _lead_id(lead: dict[str, Any], where: str) -> int:
    lead_id = _int(lead.get("id"), where, "id")
    if lead_id <= 0:
        raise FormError(
            f"{where}[id] is missing or not a positive integer; every lead needs its id"
        )
    return lead_id


# Each value reader below takes the field as `where` and `name` (the field is
# where[name]) and spells it out only in an error: most values are fine.


def _int(raw: Any, where: str, name: str) -> int:
    """A non-negative int64 from a form value; missing or blank is 0."""
    if type(raw) is str and raw.isascii() and raw.isdigit() and len(raw) <= 18:
        return int(raw)  # the usual case: plain digits, well within int64
    if raw is None:
        return 0
    field = f"{where}[{name}]"
    text = _scalar(raw, field).strip()
    if not text:
        return 0
    if not _INT_RE.fullmatch(text):
        raise FormError(f"{field}: {_show(raw)} is not an integer")
    digits = text.lstrip("0") or "0"
    if text.startswith("-") or len(digits) > 19 or int(digits) > _INT64_MAX:
        raise FormError(f"{field}: {_show(raw)} is out of range (0 to {_INT64_MAX})")
    return int(digits)


def _price(raw: Any, where: str, name: str) -> int:
    field = f"{where}[{name}]"
    text = _scalar(raw, field).strip()
    if not text:
        return 0
    match = _PRICE_RE.fullmatch(text)
    if match is None:
        raise FormError(
            f"{field}: {_show(raw)} is not an amount (expected e.g. 150000 or 150000.00)"
        )
    whole = re.sub(r"\D", "", match["whole"]).lstrip("0") or "0"
    if len(whole) > 19:
        raise FormError(f"{field}: {_show(raw)} is out of range")
    # Round half up on the first fractional digit: AmoCRM amounts are whole in practice.
    amount = int(whole) + (1 if (match["fraction"] or "0")[0] >= "5" else 0)
    if amount > _INT64_MAX:
        raise FormError(f"{field}: {_show(raw)} is out of range")
    return amount


def _text(raw: Any, where: str, name: str) -> str:
    # AmoCRM escapes HTML in text values (`&amp;` inside URLs), so unescape once here.
    if type(raw) is str:
        return html.unescape(raw)
    return html.unescape(_scalar(raw, f"{where}[{name}]"))


def _scalar(raw: Any, field: str) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise FormError(f"{field}: expected a single value, got a group of fields")
    return raw


def _set_time(target: Timestamp, lead: dict[str, Any], names: tuple[str, ...], where: str) -> None:
    for name in names:
        seconds = _int(lead.get(name), where, name)
        if seconds > _MAX_UNIX_SECONDS:
            raise FormError(
                f"{where}[{name}]: {_show(lead.get(name))} is not a unix time in seconds"
            )
        if seconds:
            target.FromSeconds(seconds)
            return


def _items(raw: Any, field: str) -> list[Any]:
    if raw is None or raw == "":
        return []
    if not isinstance(raw, list):
        raise FormError(f"{field} must be a numbered list, e.g. {field}[0][id]")
    return raw


def _add_custom_fields(deal: deal_pb2.Deal, raw: Any, where: str) -> None:
    for k, item in enumerate(_items(raw, where)):
        field = f"{where}[{k}]"
        if not isinstance(item, dict):
            raise FormError(
                f"{field} is not a custom field: expected {field}[id] and {field}[values]"
            )
        values = item.get("values")
        # A lone value or {value, enum} pair is tolerated as a one-item list.
        values = values if isinstance(values, list) else [] if values in (None, "") else [values]
        added = deal.custom_fields.add(
            id=_int(item.get("id"), field, "id"),
            name=_text(item.get("name"), field, "name"),
            code=_text(item.get("code"), field, "code"),
        )
        for m, value in enumerate(values):
            _add_custom_value(added, value, f"{field}[values][{m}]")


def _add_custom_value(field: deal_pb2.CustomField, raw: Any, where: str) -> None:
    if isinstance(raw, str):
        # Dates and checkboxes arrive bare: values[0]=1689282000.
        field.values.add(value=html.unescape(raw))
        return
    if not isinstance(raw, dict):
        raise FormError(f"{where} is not a custom field value: expected {where}[value]")
    field.values.add(
        value=_text(raw.get("value"), where, "value"),
        enum_id=_int(raw.get("enum"), where, "enum"),
    )


def _add_tags(deal: deal_pb2.Deal, raw: Any, where: str) -> None:
    for k, item in enumerate(_items(raw, where)):
        field = f"{where}[{k}]"
        if not isinstance(item, dict):
            raise FormError(f"{field} is not a tag: expected {field}[id] and {field}[name]")
        deal.tags.add(
            id=_int(item.get("id"), field, "id"),
            name=_text(item.get("name"), field, "name"),
        )


def _show(value: Any) -> str:
    """repr() cut to a readable length, for error messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
