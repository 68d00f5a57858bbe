"""AmoCRM webhook bodies: PHP-style bracket form -> lead events -> Deal protos.

Pure: no I/O, and of Falcon only its compiled form decoder (strings in, a dict out), so the
webhook resource, the replay worker and the tests share one parser. Every limit is enforced
before the work it guards, so a hostile body costs at most two passes over its bytes (the
compiled decoder, then the strict one for a body it declines), and the nesting work is bounded
by what AmoCRM sends.

Decisions the callers rely on:
- Only `leads[...]` and `account[...]` are nested: AmoCRM's other entities (`contacts[...]`,
  `task[...]`, `unsorted[...]`) and any other name are kept flat, the whole name as one
  top-level key (`{"contacts[add][0][id]": "5"}`). Nothing reads them but the log.
- A name whose brackets are malformed (`a[b`, `a]b[`, `a[b]c`) is kept whole as one literal
  top-level key; it never reaches `leads`, so it is ignored rather than rejected.
- A value longer than `FormLimits.max_value_chars` is cut there and says so at its end
  (`TRUNCATED_MARK`): what is routed is what is stored, so a replay routes the same deal.
- `key[]` appends (PHP), numeric segments are canonical decimals (`0`, `12`, not `012`); a
  container whose keys are all numeric becomes a list ordered by index, otherwise a dict with
  string keys.
- Prices: digits with an optional `.fraction` (rounded half up to whole units), thousands
  separated by spaces (`12 000`, also no-break spaces) are accepted; commas are rejected as
  ambiguous (`12,000` vs `12,50`).
- Timestamps that are empty or `0` count as absent.
- A lead with more than `MAX_CUSTOM_FIELDS` custom fields does not become a deal (its
  event is logged whole, the error naming the cap): the router would refuse it.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

# Falcon's form decoder only (compiled with Cython in its wheels): plain strings in
# and out, none of the framework's request machinery.
from falcon.uri import parse_query_string
from google.protobuf.timestamp_pb2 import Timestamp

from amoroute.v1 import deal_pb2
from edge import amocrm_values
from edge.amocrm_values import BadValue, show

LEAD_ACTIONS = frozenset({"status", "add", "update", "delete", "restore", "responsible", "note"})

# The only names nested; every other one is kept whole.
NESTED_NAMES = frozenset({"leads", "account"})
_NESTED_PREFIXES = tuple(f"{name}[" for name in sorted(NESTED_NAMES))
# Ends a value cut at FormLimits.max_value_chars; the length is the original's.
TRUNCATED_MARK = "… [truncated from {length:,} characters]"


@dataclass(frozen=True)
class FormLimits:
    """Bounds on one webhook body; the defaults leave ample room for AmoCRM's batches."""

    max_body_bytes: int = 1_048_576
    max_keys: int = 20_000
    max_depth: int = 8
    max_index: int = 10_000
    max_leads: int = 500
    # Longer values are cut (AmoCRM's longest, a text area, is far shorter): one
    # value cannot make a stored row or a routed deal huge.
    max_value_chars: int = 16_384
    # Containers (`leads`, each action, lead, custom field, value list, ...): each costs
    # more than a field, so they are bounded on their own. A body of the limit's size
    # made of leads shaped like the fixtures in tests/fixtures/amocrm makes 7,800.
    max_groups: int = 10_000


DEFAULT_LIMITS = FormLimits()


class FormError(ValueError):
    """The body cannot be parsed; the message says why in words an operator understands."""


# Custom fields of one lead that become a deal at most: the router refuses a deal with
# more (router_svc/service.py), and AmoCRM sends only a lead's filled fields. A lead with
# more is logged whole as an error naming this cap, before any of its fields is read.
MAX_CUSTOM_FIELDS = 500

# What a deal needs of the account, kept with every lead event of a body.
ACCOUNT_IDENTITY = ("id", "subdomain")
# Longer identity values (AmoCRM's are short) are cut: they repeat in every row.
_IDENTITY_CHARS = 64


@dataclass(frozen=True)
class LeadEvent:
    """One lead of one action of a webhook, with the account that sent it."""

    action: str
    # Position among the action's leads: N in leads[action][N] for AmoCRM's dense numbering.
    index: int
    lead: dict[str, Any]
    # The account's identity (ACCOUNT_IDENTITY), the same in every event of a body.
    account: dict[str, Any]
    # The whole account block as sent, on the first event of a body only (and only
    # when it holds more than the identity): stored once per body, not once per lead.
    body_account: dict[str, Any] | None = None

    @property
    def where(self) -> str:
        """The bracket path of this lead in the body, e.g. `leads[status][0]`."""
        return f"leads[{self.action}][{self.index}]"

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable: {"action", "index", "lead", "account"}, and
        "body_account" when the event has one. Shares the event's dicts (no copy:
        a webhook's events are logged as they are; nothing changes them after
        parsing)."""
        data = {
            "action": self.action,
            "index": self.index,
            "lead": self.lead,
            "account": self.account,
        }
        if self.body_account is not None:
            data["body_account"] = self.body_account
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], *, shared: bool = False) -> LeadEvent:
        """Rebuild an event stored with `to_json`; FormError when the shape is wrong.
        The event gets copies of the stored dicts, or with `shared` the dicts
        themselves (for data read to be dropped after, which nothing else holds)."""
        if not isinstance(data, dict):
            raise FormError("stored lead event is not a JSON object")
        action = data.get("action")
        index = data.get("index")
        lead = data.get("lead")
        account = data.get("account", {})
        if action not in LEAD_ACTIONS:
            raise FormError(f"stored lead event has unknown action {show(action)}")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise FormError(f"stored lead event has invalid index {show(index)}")
        if not isinstance(lead, dict) or not isinstance(account, dict):
            raise FormError("stored lead event needs 'lead' and 'account' objects")
        body_account = data.get("body_account")
        if shared:
            # PERF: a preview turns 100,000 stored events into deals and drops them;
            # measured by python -m bench.reattribution_preview
            return cls(
                action,
                index,
                lead,
                account,
                body_account if isinstance(body_account, dict) else None,
            )
        return cls(
            action,
            index,
            copy.deepcopy(lead),
            copy.deepcopy(account),
            copy.deepcopy(body_account) if isinstance(body_account, dict) else None,
        )


def parse_form(body: bytes, limits: FormLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Decode an application/x-www-form-urlencoded body with PHP-style bracket keys.

    Returns `leads` and `account` as nested dicts and lists of strings, every other name
    whole with its string value. Raises FormError on: body over the limit,
    invalid UTF-8 (after percent-decoding), too many fields, a `leads`/`account` field
    too deep or with too large an index, and a name used both as a value and as a group
    (`leads=1&leads[b]=2`). Repeated names: the last value wins.
    """
    if len(body) > limits.max_body_bytes:
        raise FormError(
            f"body is {len(body):,} bytes; the limit is {limits.max_body_bytes:,} bytes"
        )
    fields = _compiled_fields(body, limits)
    if fields is not None:
        # In body order and without repeated names: the same fields, and so the same
        # first bad field, as the field-by-field pass would give.
        return _nest(fields.items(), limits)
    return _nest(_fields(body, limits), limits)


def _compiled_fields(body: bytes, limits: FormLimits) -> dict[str, str] | None:
    """Every field of a well-formed body, decoded by Falcon's compiled form decoder
    (a tenth of the pure-Python pass on AmoCRM's batches); None for a body the
    field-by-field pass must judge: one with repeated names (Falcon groups them, which
    loses their order), a replacement or NUL character (Falcon replaces invalid UTF-8
    silently, and stored text cannot hold NUL), too many separators to be within
    the field limit for sure, or no named field at all."""
    if body.count(b"&") >= limits.max_keys:
        return None
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        return None
    fields = parse_query_string(text, keep_blank=True)
    fields.pop("", None)  # nameless pairs (`=x`) are skipped
    if not fields:  # the field-by-field pass reads an empty or nameless body
        return None
    # PERF: the types' set is made in C, not a Python loop over every field;
    # measured by python -m bench.hostile_bodies
    if not set(map(type, fields.values())) <= {str}:
        return None
    keys, values = "".join(fields), "".join(fields.values())  # type: ignore[arg-type]
    for suspect in ("\ufffd", "\x00"):
        if suspect in keys or suspect in values:
            return None
    cap = limits.max_value_chars
    if len(values) > cap:  # only then can one value be over the cap
        for key, value in fields.items():
            if len(value) > cap:
                fields[key] = _cut(value, cap)  # type: ignore[arg-type]
    return fields  # type: ignore[return-value]


def _fields(body: bytes, limits: FormLimits) -> Iterator[tuple[str, str]]:
    """Each (name, value) of the body in order, decoded strictly: FormError names the
    first field that is not UTF-8. A body without fields is an empty form: like any form
    without lead events, it is logged as ignored."""
    pairs = [pair for pair in bytes(body).split(b"&") if pair]
    if len(pairs) > limits.max_keys:
        raise FormError(f"body has {len(pairs):,} fields; the limit is {limits.max_keys:,}")
    cap = limits.max_value_chars
    for number, pair in enumerate(pairs, 1):
        raw_key, _, raw_value = pair.partition(b"=")
        try:
            key = _name(raw_key)
        except UnicodeDecodeError as exc:
            raise _not_utf8(f"name of field #{number}", exc) from None
        if key:
            try:
                value = _decode(raw_value)
            except UnicodeDecodeError as exc:
                raise _not_utf8(f"value of {show(key)}", exc) from None
            yield key, value if len(value) <= cap else _cut(value, cap)


def _cut(value: str, cap: int) -> str:
    """A value over the cap: its first `cap` characters and a mark saying so."""
    return value[:cap] + TRUNCATED_MARK.format(length=len(value))


def _nest(fields: Iterable[tuple[str, str]], limits: FormLimits) -> dict[str, Any]:
    """Fields in body order -> the form: `leads` and `account` nested as their
    brackets describe, every other name kept whole."""
    # PERF: a cached split per name, and every container kept by its name, so a field
    # costs a lookup or two and a new container is made from its nearest ancestor, not
    # by a walk from the top; measured by python -m bench.hostile_bodies
    form: dict[str, Any] = {}
    nesting = _Nesting(form, limits)
    containers, appended = nesting.containers, nesting.appended
    for key, value in fields:
        field = _field(key)
        if field is None:  # kept whole
            if key in NESTED_NAMES and type(form.get(key)) is dict:
                raise _conflict(key, key)
            form[key] = value
            continue
        prefix, slot = field
        node = containers.get(prefix)
        if node is None:
            node = nesting.container(key, prefix)
            if node is None:  # malformed brackets: kept whole
                form[key] = value
                continue
        if type(slot) is int:
            if slot > limits.max_index:
                raise _index_over(key, limits)
            if appended and id(node) in appended:
                appended[id(node)] = max(appended[id(node)], slot + 1)
        elif slot is None:
            slot = _append(node, appended, key, limits)
        if type(node.get(slot)) is dict:
            raise _conflict(key, key)
        node[slot] = value
    return {key: value if type(value) is str else _finish(value) for key, value in form.items()}


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
    identity = account_identity(account)
    # Every event's log row carries the account: a padded account block must not be
    # copied into each of a body's leads, so the whole block goes with the first only.
    whole = account if account != identity else None
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
            events.append(LeadEvent(action, index, lead, identity, None if events else whole))
    return events


def account_identity(account: dict[str, Any]) -> dict[str, Any]:
    """The account's id and subdomain (as sent, cut when absurdly long)."""
    identity = {}
    for name in ACCOUNT_IDENTITY:
        value = account.get(name)
        if isinstance(value, str):
            cap = _IDENTITY_CHARS
            identity[name] = value if len(value) <= cap else _cut(value, cap)
    return identity


def deal_from_event(event: LeadEvent) -> deal_pb2.Deal:
    """Map one lead event to a Deal proto; FormError names the first field that is wrong."""
    lead, where = event.lead, event.where
    if not isinstance(lead, dict):
        raise FormError(f"{where} is not a lead")
    get = lead.get
    deal = deal_pb2.Deal(
        lead_id=_lead_id(lead, where),
        name=_text(get("name"), where, "name"),
        status_id=_int(get("status_id"), where, "status_id"),
        old_status_id=_int(get("old_status_id"), where, "old_status_id"),
        pipeline_id=_int(get("pipeline_id"), where, "pipeline_id"),
        old_pipeline_id=_int(get("old_pipeline_id"), where, "old_pipeline_id"),
        price=_price(get("price"), where, "price"),
        account_id=_int(get("account_id"), where, "account_id")
        or _int(event.account.get("id"), "account", "id"),
        account_subdomain=_text(event.account.get("subdomain"), "account", "subdomain"),
        responsible_user_id=_int(get("responsible_user_id"), where, "responsible_user_id"),
        event=event.action,
        # PERF: read as plain dicts and made into messages by the constructor in one call,
        # not added field by field; measured by python -m bench.reattribution_preview
        custom_fields=_custom_fields(lead.get("custom_fields"), f"{where}[custom_fields]"),
        tags=_tags(lead.get("tags"), f"{where}[tags]"),
    )
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


@functools.lru_cache(maxsize=4096)
def _field(key: str) -> tuple[str, str | int | None] | None:
    """A nested name's container (the name without its last segment) and its last
    segment's slot (an index, a name, None for `[]`); None for a name kept whole. Every
    webhook repeats the same few hundred names, so each is split once."""
    if not key.startswith(_NESTED_PREFIXES) or key[-1] != "]":
        return None
    cut = key.rfind("[")
    last = key[cut + 1 : -1]
    if "]" in last:
        return None
    return key[:cut], None if last == "" else _slot(last)


class _Nesting:
    """The containers of one body's nested names as they are made."""

    def __init__(self, form: dict[str, Any], limits: FormLimits) -> None:
        self.form = form
        self.limits = limits
        # Each container by its name (`leads[status][0]`), except those under a `[]`:
        # an append makes a new container at each use.
        self.containers: dict[str, dict[Any, Any]] = {}
        # Each segment's slot: a body repeats a few segments.
        self.slots: dict[str, Any] = {}
        # Next index of each container that `[]` appended to, by id.
        self.appended: dict[int, int] = {}
        self.groups = 0
        self.leads = 0

    def container(self, key: str, prefix: str) -> dict[Any, Any] | None:
        """The container `prefix` of a nested name (`key` without its last segment),
        made on the way as needed from the nearest container made already; None when
        the name's brackets are malformed (it is then kept whole)."""
        limits = self.limits
        # Counting '[' first bounds the split on absurd names.
        if key.count("[") > limits.max_depth:
            raise FormError(f"field {show(key)} is nested deeper than {limits.max_depth} levels")
        # Most often the container's own container is made already: then only its
        # last segment is new, and the name is well-formed when that one is.
        cut = prefix.rfind("[")
        parent = self.containers.get(prefix[:cut]) if prefix[-1] == "]" else None
        if parent is not None and "]" not in prefix[cut + 1 : -1]:
            made = self.groups
            child = self._child(parent, key, prefix, prefix[cut + 1 : -1])
            if self.groups > made and prefix.startswith("leads[") and prefix.count("[") == 2:
                self._count_lead(prefix[6 : cut - 1])
            return child
        base, _, rest = key.partition("[")
        inner = rest[:-1]
        # Well-formed when no bracket is left once the separators are taken out.
        bare = inner.replace("][", "")
        if "[" in bare or "]" in bare or "]" in base:
            return None  # malformed brackets
        segments = [base, *inner.split("][")]
        # The names of the containers to make, deepest first, up to one made already.
        missing: list[tuple[str, int]] = []
        name, depth = prefix, len(segments) - 2
        node = self.containers.get(name)
        while node is None and depth > 0:
            missing.append((name, depth))
            name, depth = name[: name.rfind("[")], depth - 1
            node = self.containers.get(name)
        if node is None:  # the top-level name
            node = self.form.get(name)
            if node is None:
                node = self.form[name] = self.containers[name] = {}
                self.groups += 1
            elif type(node) is not dict:
                raise _conflict(key, name)
        for name, depth in reversed(missing):
            made = self.groups
            node = self._child(node, key, name, segments[depth])
            if depth == 2 and self.groups > made and segments[0] == "leads":
                self._count_lead(segments[1])
        return node

    def _count_lead(self, action: str) -> None:
        """A new lead of `action`: more than lead_events() takes end the body here,
        before the work of nesting them."""
        if action in LEAD_ACTIONS:
            self.leads += 1
            if self.leads > self.limits.max_leads:
                raise FormError(f"body carries more than {self.limits.max_leads} leads")

    def _child(self, node: dict[Any, Any], key: str, name: str, segment: str) -> dict[Any, Any]:
        """The container `name` under `node`, made when new; `segment` is its last."""
        limits, appended = self.limits, self.appended
        slot = self.slots.get(segment, _UNSEEN)
        if slot is _UNSEEN:
            slot = self.slots[segment] = _slot(segment)
        if type(slot) is int:
            if slot > limits.max_index:
                raise _index_over(key, limits)
            if appended and id(node) in appended:
                appended[id(node)] = max(appended[id(node)], slot + 1)
        elif slot is None:
            slot = _append(node, appended, key, limits)
        child = node.get(slot)
        if child is None:
            child = node[slot] = {}
            self.groups += 1
            if self.groups > limits.max_groups:
                raise FormError(
                    f"body has more than {limits.max_groups:,} groups of fields (leads, "
                    "custom fields, their values...); AmoCRM's batches have far fewer"
                )
        elif type(child) is not dict:
            raise _conflict(key, name)
        if "[]" not in name:
            self.containers[name] = child
        return child


def _slot(segment: str) -> str | int | None:
    """Where a segment goes in its container: a canonical decimal (`0`, `12`, not `012`)
    is an index, `` (from `[]`) is None (the next index), anything else a name."""
    if segment.isdigit() and segment.isascii() and (segment[0] != "0" or len(segment) == 1):
        # Length first: int() of a huge digit string is slow.
        return int(segment) if len(segment) <= 19 else _HUGE_INDEX
    return segment or None


def _append(node: dict[Any, Any], appended: dict[int, int], key: str, limits: FormLimits) -> int:
    """The index `key[]` appends at in `node`: one past its highest index (PHP)."""
    index = appended.get(id(node))
    if index is None:
        index = max((slot for slot in node if type(slot) is int), default=-1) + 1
    if index > limits.max_index:
        raise _index_over(key, limits)
    appended[id(node)] = index + 1
    return index


def _index_over(key: str, limits: FormLimits) -> FormError:
    return FormError(f"field {show(key)} has an index above the limit of {limits.max_index:,}")


# Above any index limit: an index segment too long to be worth converting.
_HUGE_INDEX = 10**19
# A segment not looked at yet.
_UNSEEN = object()


def _conflict(key: str, prefix: str) -> FormError:
    return FormError(
        f"field {show(key)} uses {show(prefix)} both as a value and as a group of fields"
    )


def _finish(node: dict[Any, Any]) -> dict[str, Any] | list[Any]:
    """A container as plain dicts and lists (the values are strings): a list ordered by
    index when every key is an index, otherwise a dict with string keys."""
    if type(next(iter(node))) is int:
        try:
            order = sorted(node)  # TypeError: a name among the indexes
        except TypeError:
            pass
        else:
            return [
                child if type(child) is str else _finish(child)
                for child in map(node.__getitem__, order)
            ]
    # PERF: a container of named strings only (most of a lead's) is already plain:
    # checked in C, not copied; measured by python -m bench.hostile_bodies
    if set(map(type, node.values())) == _STR and set(map(type, node)) == _STR:
        return node
    return {
        slot if type(slot) is str else str(slot): child if type(child) is str else _finish(child)
        for slot, child in node.items()
    }


_STR = {str}


def _lead_id(lead: dict[str, Any], where: str) -> int:
    lead_id = _int(lead.get("id"), where, "id")
    if lead_id <= 0:
        raise FormError(
            f"{where}[id] is missing or not a positive integer; every lead needs its id"
        )
    return lead_id


# Each value reader below takes the field as `where` and `name` (the field is
# where[name]) and spells it out only in an error: most values are fine. The
# reading itself is edge/amocrm_values.py's, shared with the API client.


# PERF: a plain string, as most values are, is read without the _scalar() call: a deal has
# dozens of values; measured by python -m bench.reattribution_preview
def _int(raw: Any, where: str, name: str) -> int:
    """A non-negative int64 from a form value; missing or blank is 0."""
    try:
        return amocrm_values.integer(raw if type(raw) is str else _scalar(raw, where, name))
    except BadValue as exc:
        raise FormError(f"{where}[{name}]: {exc}") from None


def _price(raw: Any, where: str, name: str) -> int:
    try:
        return amocrm_values.amount(_scalar(raw, where, name) or "")
    except BadValue as exc:
        raise FormError(f"{where}[{name}]: {exc}") from None


def _text(raw: Any, where: str, name: str) -> str:
    return amocrm_values.text(raw if type(raw) is str else _scalar(raw, where, name))


def _scalar(raw: Any, where: str, name: str) -> str | None:
    if raw is not None and not isinstance(raw, str):
        raise FormError(f"{where}[{name}]: expected a single value, got a group of fields")
    return raw


def _set_time(target: Timestamp, lead: dict[str, Any], names: tuple[str, ...], where: str) -> None:
    for name in names:
        try:
            seconds = amocrm_values.unix_seconds(_scalar(lead.get(name), where, name))
        except BadValue as exc:
            raise FormError(f"{where}[{name}]: {exc}") from None
        if seconds:
            target.FromSeconds(seconds)
            return


def _items(raw: Any, field: str) -> list[Any]:
    if raw is None or raw == "":
        return []
    if not isinstance(raw, list):
        raise FormError(f"{field} must be a numbered list, e.g. {field}[0][id]")
    return raw


def _custom_fields(raw: Any, where: str) -> list[dict[str, Any]]:
    """A lead's custom fields as CustomField dicts; FormError names the first one wrong."""
    items = _items(raw, where)
    if len(items) > MAX_CUSTOM_FIELDS:
        raise FormError(
            f"{where} holds {len(items):,} custom fields; a deal takes at most "
            f"{MAX_CUSTOM_FIELDS} (AmoCRM sends only the filled ones)"
        )
    fields = []
    for k, item in enumerate(items):
        if not isinstance(item, dict):
            field = f"{where}[{k}]"
            raise FormError(
                f"{field} is not a custom field: expected {field}[id] and {field}[values]"
            )
        try:
            field_id, name, code = _field_head(item.get("id"), item.get("name"), item.get("code"))
        except (FormError, TypeError):  # TypeError: a group where a value belongs (unhashable)
            field = f"{where}[{k}]"  # read again for the error to name the field
            _int(item.get("id"), field, "id")
            _text(item.get("name"), field, "name")
            _text(item.get("code"), field, "code")
            raise
        values = _custom_values(item.get("values"), where, k)
        fields.append({"id": field_id, "name": name, "code": code, "values": values})
    return fields


# PERF: an account's deals carry the same few dozen fields, so each field's id, name and
# code are read once, not once per deal; measured by python -m bench.reattribution_preview
@functools.lru_cache(maxsize=4096)
def _field_head(raw_id: Any, raw_name: Any, raw_code: Any) -> tuple[int, str, str]:
    """A custom field's id, name and code; FormError without the field's place."""
    return _int(raw_id, "", "id"), _text(raw_name, "", "name"), _text(raw_code, "", "code")


def _custom_values(raw: Any, where: str, k: int) -> list[dict[str, Any]]:
    """The values of custom field number `k` as CustomFieldValue dicts."""
    # A lone value or {value, enum} pair is tolerated as a one-item list.
    items = raw if isinstance(raw, list) else [] if raw in (None, "") else [raw]
    values = []
    for m, item in enumerate(items):
        if isinstance(item, str):
            # Dates and checkboxes arrive bare: values[0]=1689282000.
            values.append({"value": amocrm_values.text(item)})
            continue
        at = f"{where}[{k}][values][{m}]"
        if not isinstance(item, dict):
            raise FormError(f"{at} is not a custom field value: expected {at}[value]")
        value: dict[str, Any] = {"value": _text(item.get("value"), at, "value")}
        enum = item.get("enum")
        if enum is not None:
            value["enum_id"] = _int(enum, at, "enum")
        values.append(value)
    return values


def _tags(raw: Any, where: str) -> list[dict[str, Any]]:
    """A lead's tags as Tag dicts; FormError names the first one wrong."""
    tags = []
    for k, item in enumerate(_items(raw, where)):
        field = f"{where}[{k}]"
        if not isinstance(item, dict):
            raise FormError(f"{field} is not a tag: expected {field}[id] and {field}[name]")
        tags.append(
            {
                "id": _int(item.get("id"), field, "id"),
                "name": _text(item.get("name"), field, "name"),
            }
        )
    return tags
