"""How the admin API writes stored values as JSON."""

from datetime import datetime
from typing import Any

from amoroute.timeutil import utc


def iso(value: datetime | None) -> str | None:
    """A moment in ISO 8601 UTC; None stays None."""
    return None if value is None else utc(value).isoformat()


def public(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as JSON: datetimes in ISO 8601 UTC, internal bookkeeping left out."""
    out = {k: iso(v) if isinstance(v, datetime) else v for k, v in row.items()}
    out.pop("attempt_started_at", None)
    return out
