"""AIP-158 page tokens: an opaque token that carries the last row id seen."""

import base64
import re
from collections.abc import Callable
from typing import Protocol, TypeVar

from amoroute.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Row ids are positive int64 (BIGINT / SQLite INTEGER): a token beyond them was
# never issued, and would overflow the database's comparison.
MAX_ID = 2**63 - 1
_ID = re.compile(r"[1-9][0-9]{0,18}")


def page_size(
    requested: int, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE
) -> int:
    """The page size to use for a request's `page_size` (0 means the default); a list
    of large items (whole documents) sets a smaller default and maximum."""
    if requested < 0:
        raise InvalidArgument("page_size", "must not be negative")
    return min(requested or default, maximum)


class _Row(Protocol):
    @property
    def id(self) -> int: ...


class _PageRequest(Protocol):
    page_size: int
    page_token: str


Row = TypeVar("Row", bound=_Row)


def fetch_page(
    request: _PageRequest,
    fetch: Callable[[int, int | None], list[Row]],
    default: int = DEFAULT_PAGE_SIZE,
    maximum: int = MAX_PAGE_SIZE,
) -> tuple[list[Row], str]:
    """One page for a List request and its next_page_token. `fetch(limit, after_id)`
    returns rows newest first with ids below after_id; one row more than the page
    is asked for, to know whether another page follows."""
    size = page_size(request.page_size, default, maximum)
    rows = fetch(size + 1, decode_token(request.page_token))
    page = rows[:size]
    return page, encode_token(page[-1].id) if len(rows) > size else ""


def encode_token(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_token(token: str) -> int | None:
    """The row id after which the next page starts; None for the first page.
    InvalidArgument naming page_token for anything encode_token did not make."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except ValueError:
        raw = ""
    prefix, _, value = raw.partition(":")
    if prefix != "id" or not _ID.fullmatch(value) or int(value) > MAX_ID:
        raise InvalidArgument(
            "page_token",
            "is not a token this service issued; pass the next_page_token of the "
            "previous page, or none for the first page",
        )
    return int(value)
