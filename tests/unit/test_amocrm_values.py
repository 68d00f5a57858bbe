"""The value readers the webhook form parser and the API client share."""

import pytest

from edge.amocrm_values import INT64_MAX, BadValue, amount, integer, text, unix_seconds


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, 0),
        ("", 0),
        ("  ", 0),
        ("42", 42),
        (" 0042 ", 42),
        (42, 42),
        (42.0, 42),
        (str(INT64_MAX), INT64_MAX),
        (INT64_MAX, INT64_MAX),
    ],
)
def test_a_string_or_a_number_reads_as_the_same_integer(raw: object, expected: int) -> None:
    assert integer(raw) == expected


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("12a", "'12a' is not an integer"),
        ("1.5", "'1.5' is not an integer"),
        (1.5, "1.5 is not an integer"),
        (True, "True is not an integer"),
        ({"a": 1}, "{'a': 1} is not an integer"),
        ("-1", "'-1' is out of range (0 to 9223372036854775807)"),
        (-1, "-1 is out of range (0 to 9223372036854775807)"),
        (str(INT64_MAX + 1), "is out of range (0 to 9223372036854775807)"),
        (INT64_MAX + 1, "is out of range (0 to 9223372036854775807)"),
    ],
)
def test_a_value_that_is_no_int64_names_the_problem(raw: object, problem: str) -> None:
    with pytest.raises(BadValue, match=problem.replace("(", r"\(").replace(")", r"\)")):
        integer(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", 0), ("150000", 150000), ("150 000", 150000), ("150000.50", 150001), ("9.4", 9)],
)
def test_amounts_read_with_group_spaces_and_rounding(raw: str, expected: int) -> None:
    assert amount(raw) == expected


def test_text_is_unescaped_once_and_nul_kept_visible() -> None:
    assert text("a&amp;amp;b\x00") == "a&amp;b\ufffd"
    assert text(None) == ""


def test_a_time_beyond_year_9999_is_not_a_unix_time() -> None:
    assert unix_seconds("1689282000") == 1689282000
    with pytest.raises(BadValue, match="is not a unix time in seconds"):
        unix_seconds(253_402_300_800)
