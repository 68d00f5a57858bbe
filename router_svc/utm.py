"""UTM marks of a deal, read from its custom fields (pure: no I/O)."""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import parse_qsl

from amoroute.contract import UTM_KEYS
from amoroute.v1 import deal_pb2

_NAME_SEPARATORS = re.compile(r"[\s_-]+")
_HTTP_URL = re.compile(r"https?://", re.IGNORECASE)


@dataclass(frozen=True)
class UtmSources:
    """Where to look for UTM marks beyond the standard codes and names (from the rules file)."""

    # utm key ("source") -> field ids (as str) or field names, in priority order.
    extra_fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    # Field ids/names holding a landing URL; empty = any field whose value is an http(s) URL.
    url_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Frozen means frozen: a caller's dict must not change the rules behind our back.
        frozen = MappingProxyType({k: tuple(v) for k, v in self.extra_fields.items()})
        object.__setattr__(self, "extra_fields", frozen)
        object.__setattr__(self, "url_fields", tuple(self.url_fields))


def extract_utm(deal: deal_pb2.Deal, sources: UtmSources) -> deal_pb2.UtmMarks:
    """Return the deal's UTM marks; for each key the first non-empty value wins, looking at
    the field code, then the field name, then configured extra fields, then a URL's query."""
    fields = list(deal.custom_fields)
    # One pass over the fields: each field's first value, and the first non-empty
    # value of each code and each name (the first field in the deal's order wins).
    values = [_first_value(f) for f in fields]
    by_code: dict[str, str] = {}
    by_name: dict[str, str] = {}
    for custom_field, value in zip(fields, values, strict=True):
        if value:
            by_code.setdefault(_normalise_code(custom_field.code), value)
            by_name.setdefault(_normalise_name(custom_field.name), value)
    url_query: dict[str, str] | None = None
    marks: dict[str, str] = {}
    for key in UTM_KEYS:
        value = (
            by_code.get(f"UTM_{key.upper()}")
            or by_name.get(f"utm_{key}")
            or _by_extra(fields, sources.extra_fields.get(key, ()))
        )
        if not value:
            if url_query is None:  # parsed once, and only when some key needs it
                url_query = _url_query(fields, values, sources.url_fields)
            value = url_query.get(key, "")
        marks[key] = value
    return deal_pb2.UtmMarks(**marks)


def _first_value(custom_field: deal_pb2.CustomField) -> str:
    for item in custom_field.values:
        value = item.value.strip()
        if value:
            return value
    return ""


def _first_of(fields: Iterable[deal_pb2.CustomField]) -> str:
    for custom_field in fields:
        value = _first_value(custom_field)
        if value:
            return value
    return ""


# An account's deals carry the same few field codes and names: each is normalised once.
@functools.lru_cache(maxsize=1024)
def _normalise_code(code: str) -> str:
    return code.strip().upper()


@functools.lru_cache(maxsize=1024)
def _normalise_name(name: str) -> str:
    return _NAME_SEPARATORS.sub("_", name.strip().lower())


def _matching(
    fields: list[deal_pb2.CustomField], wanted: Iterable[str]
) -> Iterator[deal_pb2.CustomField]:
    """Fields named by id or name, in the configured order (the config states the priority)."""
    for ref in wanted:
        ref_id = ref.strip()
        ref_name = ref.strip().casefold()
        for custom_field in fields:
            if ref_id == str(custom_field.id) or ref_name == custom_field.name.strip().casefold():
                yield custom_field


def _by_extra(fields: list[deal_pb2.CustomField], wanted: tuple[str, ...]) -> str:
    return _first_of(_matching(fields, wanted)) if wanted else ""


def _url_query(
    fields: list[deal_pb2.CustomField], values: list[str], url_fields: tuple[str, ...]
) -> dict[str, str]:
    """UTM values from landing URLs: utm key ("source") -> first non-empty value.
    `values`: each field's first value."""
    if url_fields:
        urls = [_first_value(f) for f in _matching(fields, url_fields)]
    else:
        urls = [v for v in values if _HTTP_URL.match(v)]
    found: dict[str, str] = {}
    for url in urls:
        for name, value in _query_pairs(url):
            name = name.strip().lower()
            value = value.strip()
            if name.startswith("utm_") and value and name[4:] in UTM_KEYS:
                found.setdefault(name[4:], value)
    return found


def _query_pairs(url: str) -> list[tuple[str, str]]:
    # AmoCRM stores form URLs HTML-escaped ("&amp;"). The query is cut out by hand rather than
    # with urlsplit, which raises on malformed hosts such as "http://[oops/?utm_source=x".
    text = html.unescape(url)
    _, question, rest = text.partition("?")
    if not question:
        return []
    query = rest.partition("#")[0]
    return parse_qsl(query, keep_blank_values=False)
