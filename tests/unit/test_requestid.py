"""A request id is 1-64 ASCII letters, digits, '.', '_' or '-'; anything else is replaced
by a new id, on the edge and on every gRPC hop (issue #8, point 7)."""

import pytest

from amoroute import requestid

VALID = ["a", "abc-123.X_y", "x" * 64, "0f3c9a1b2d4e5f60"]
INVALID = ["", "é", "Ã©", "x" * 65, "a b", "a/b", "a;b", "a\x00b", "a\nb", "ｆｕｌｌ", "٣"]


@pytest.mark.parametrize("value", VALID)
def test_a_valid_id_is_kept(value: str) -> None:
    assert requestid.accept(value) == value
    assert requestid.from_metadata([("other", "x"), (requestid.HEADER, value)]) == value


@pytest.mark.parametrize("value", INVALID)
def test_an_invalid_id_is_replaced_by_a_new_valid_one(value: str) -> None:
    replaced = requestid.accept(value)
    assert replaced != value and requestid.is_valid(replaced)
    assert replaced.isascii()
    assert requestid.from_metadata([(requestid.HEADER, value)]) == ""


def test_a_missing_id_is_made() -> None:
    assert requestid.is_valid(requestid.accept(None))
    assert requestid.from_metadata(None) == ""
