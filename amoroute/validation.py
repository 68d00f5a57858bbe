"""Request field checks shared by the servicers; each raises InvalidArgument naming the field."""

from collections.abc import Callable, Sequence
from typing import TypeVar

from amoroute.contract import UTM_KEYS
from amoroute.errors import InvalidArgument
from amoroute.v1 import deal_pb2

MAX_TEXT = 10_000
# Requests in one Batch… RPC at most (every service takes as many as the router sends).
MAX_BATCH_REQUESTS = 500

Request = TypeVar("Request")
Item = TypeVar("Item")


def positive(field: str, value: int) -> int:
    if value <= 0:
        raise InvalidArgument(field, f"must be a positive integer, got {value}")
    return value


# The largest deal amount accepted (whole currency units). Far above any real
# deal, and low enough that the sums in the stats of thousands of such deals
# still fit int64.
MAX_AMOUNT = 10**15


def amount(field: str, value: int) -> int:
    if not 0 <= value <= MAX_AMOUNT:
        raise InvalidArgument(field, f"must be between 0 and {MAX_AMOUNT}, got {value}")
    return value


def not_negative(field: str, value: int) -> int:
    if value < 0:
        raise InvalidArgument(field, f"must not be negative, got {value}")
    return value


def text(field: str, value: str, *, required: bool = False, max_len: int = MAX_TEXT) -> str:
    if problem := _text_problem(value, required, max_len):
        raise InvalidArgument(field, problem)
    return value


def utm_marks(field: str, utm: deal_pb2.UtmMarks) -> dict[str, str]:
    """The marks as {"source": …, …}, each checked as text() checks
    `field.source`, …; the field's name is spelled out only for an error
    (every routed deal brings its marks to two services)."""
    marks = {key: getattr(utm, key) for key in UTM_KEYS}
    for key, value in marks.items():
        if problem := _text_problem(value, False, MAX_TEXT):
            raise InvalidArgument(f"{field}.{key}", problem)
    return marks


_VIEWS = {
    deal_pb2.WRITE_VIEW_UNSPECIFIED: True,
    deal_pb2.WRITE_VIEW_FULL: True,
    deal_pb2.WRITE_VIEW_OUTCOME: False,
}


def with_record(field: str, view: deal_pb2.WriteView) -> bool:
    """Whether a batch write in this WriteView answers with the stored records.
    An unknown value (a caller built against a newer contract) is refused rather
    than read as one of ours."""
    if view not in _VIEWS:
        raise InvalidArgument(
            field, f"unknown WriteView {view}; use WRITE_VIEW_FULL or WRITE_VIEW_OUTCOME"
        )
    return _VIEWS[view]


def _text_problem(value: str, required: bool, max_len: int) -> str | None:
    """What is wrong with a text field's value, or None."""
    if required and not value.strip():
        return "is required"
    if "\x00" in value:
        return "must not contain NUL characters"
    if len(value) > max_len:
        return f"is longer than {max_len} characters"
    return None


def batch_size(requests: Sequence[object]) -> None:
    """A Batch… RPC's `requests` field holds at most MAX_BATCH_REQUESTS requests."""
    if len(requests) > MAX_BATCH_REQUESTS:
        raise InvalidArgument(
            "requests",
            f"at most {MAX_BATCH_REQUESTS} per batch, got {len(requests)}; split the batch",
        )


def each_request(requests: Sequence[Request], check: Callable[[Request], Item]) -> list[Item]:
    """`check` (which validates and converts one request) applied to each request
    of a batch; the first bad one raises InvalidArgument naming requests[i].…"""
    batch_size(requests)
    items = []
    for i, request in enumerate(requests):
        try:
            items.append(check(request))
        except InvalidArgument as exc:
            raise exc.within(f"requests[{i}]") from None
    return items
