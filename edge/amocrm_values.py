"""Reading AmoCRM's values, shared by the webhook form parser (edge/amocrm_form.py) and the
API client (edge/amocrm_api.py). Pure: no I/O.

AmoCRM sends the same numbers as strings in webhooks and as JSON numbers (sometimes strings)
in API answers. Each reader takes either and raises BadValue with the problem only; the
caller names the field and raises its own error, so a message reads the same for a webhook
and for an API answer.
"""

import html
import re
from typing import Any

INT64_MAX = 2**63 - 1
# protobuf Timestamp cannot represent anything after 9999-12-31T23:59:59Z.
MAX_UNIX_SECONDS = 253_402_300_799

_INT_RE = re.compile(r"-?[0-9]+")
_AMOUNT_RE = re.compile(
    r"(?P<whole>[0-9]+|[0-9]{1,3}(?:[ \u00a0\u202f][0-9]{3})+)(?:\.(?P<fraction>[0-9]+))?"
)


class BadValue(ValueError):
    """A value that is not what the field holds; the message is the problem, without the field."""


def show(value: Any) -> str:
    """repr() cut to a readable length, for error messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def integer(raw: Any) -> int:
    """A non-negative int64 from an int, a whole float or a string of digits; None or blank is 0."""
    if type(raw) is str and raw.isascii() and raw.isdigit() and len(raw) <= 18:
        return int(raw)  # the usual case: plain digits, well within int64
    if raw is None:
        return 0
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if type(raw) is int:
        if not 0 <= raw <= INT64_MAX:
            raise BadValue(f"{show(raw)} is out of range (0 to {INT64_MAX})")
        return raw
    text = raw.strip() if isinstance(raw, str) else ""
    if not isinstance(raw, str) or (text and not _INT_RE.fullmatch(text)):
        raise BadValue(f"{show(raw)} is not an integer")
    if not text:
        return 0
    digits = text.lstrip("0") or "0"
    if text.startswith("-") or len(digits) > 19 or int(digits) > INT64_MAX:
        raise BadValue(f"{show(raw)} is out of range (0 to {INT64_MAX})")
    return int(digits)


def amount(raw: str) -> int:
    """A whole amount from text such as `150000`, `150 000` or `150000.50`; blank is 0.
    Rounded half up on the first fractional digit: AmoCRM amounts are whole in practice."""
    text = raw.strip()
    if not text:
        return 0
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)  # the usual case: plain digits, well within int64
    match = _AMOUNT_RE.fullmatch(text)
    if match is None:
        raise BadValue(f"{show(raw)} is not an amount (expected e.g. 150000 or 150000.00)")
    whole = re.sub(r"\D", "", match["whole"]).lstrip("0") or "0"
    if len(whole) > 19:
        raise BadValue(f"{show(raw)} is out of range")
    rounded = int(whole) + (1 if (match["fraction"] or "0")[0] >= "5" else 0)
    if rounded > INT64_MAX:
        raise BadValue(f"{show(raw)} is out of range")
    return rounded


def text(raw: str | None) -> str:
    """Text as AmoCRM meant it: it escapes HTML in text values (`&amp;` inside URLs),
    in webhooks and API answers alike, so unescaped once; None is "". NUL cannot be
    stored in PostgreSQL text and is never meaningful here: it is kept visible."""
    if raw is None:
        return ""
    # PERF: most text has nothing to unescape or replace: returned as it is, with no
    # call; measured by python -m bench.reattribution_preview
    if "&" not in raw and "\x00" not in raw:
        return raw
    return html.unescape(raw).replace("\x00", "\ufffd")


def unix_seconds(raw: Any) -> int:
    """A unix time in whole seconds (0: none), within what a protobuf Timestamp holds."""
    seconds = integer(raw)
    if seconds > MAX_UNIX_SECONDS:
        raise BadValue(f"{show(raw)} is not a unix time in seconds")
    return seconds
