"""Request field checks shared by the servicers; each raises InvalidArgument naming the field."""

from amoroute.errors import InvalidArgument

MAX_TEXT = 10_000


def positive(field: str, value: int) -> int:
    if value <= 0:
        raise InvalidArgument(field, f"must be a positive integer, got {value}")
    return value


def not_negative(field: str, value: int) -> int:
    if value < 0:
        raise InvalidArgument(field, f"must not be negative, got {value}")
    return value


def text(field: str, value: str, *, required: bool = False, max_len: int = MAX_TEXT) -> str:
    if required and not value.strip():
        raise InvalidArgument(field, "is required")
    if "\x00" in value:
        raise InvalidArgument(field, "must not contain NUL characters")
    if len(value) > max_len:
        raise InvalidArgument(field, f"is longer than {max_len} characters")
    return value
