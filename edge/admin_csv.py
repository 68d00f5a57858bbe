"""The admin API's CSV answers: an attachment streamed from pages of rows."""

from collections.abc import Iterable, Sequence
from typing import Any

import falcon

from amoroute.timeutil import now
from edge.csv_export import csv_chunks


def send_csv(
    resp: falcon.Response,
    name: str,
    header: Sequence[str],
    pages: Iterable[Iterable[Sequence[Any]]],
) -> None:
    """Answer with `pages` of rows as a CSV attachment named after `name` and the time,
    written to the client as each page is read."""
    resp.content_type = "text/csv; charset=utf-8"
    resp.downloadable_as = f"{name}-{now().strftime('%Y%m%dT%H%M%SZ')}.csv"
    resp.stream = csv_chunks(header, pages)
