"""Rows as CSV for a spreadsheet, pure: UTF-8 with a byte order mark (so Excel reads
Cyrillic right), and text cells that a spreadsheet would take for a formula defused."""

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from amoroute.timeutil import utc

BOM = "\ufeff"
# A cell starting with one of these is a formula to Excel, LibreOffice and Sheets
# (OWASP "CSV injection"); tab and carriage return start one in some of them too.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str | int | float:
    """One value as a CSV cell: None empty, datetimes ISO 8601 UTC, text that would
    start a formula prefixed with an apostrophe (numbers are left as numbers)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    if isinstance(value, datetime):
        return utc(value).isoformat()
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_chunks(
    header: Sequence[str], pages: Iterable[Iterable[Sequence[Any]]]
) -> Iterator[bytes]:
    """The CSV document, UTF-8 bytes, one chunk per page of rows (the first with the
    BOM and the header), so an export of any size is written as it is read."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write(BOM)
    writer.writerow(header)
    yield _drain(buffer)
    for page in pages:
        writer.writerows([cell(v) for v in row] for row in page)
        chunk = _drain(buffer)
        if chunk:
            yield chunk


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    return data
