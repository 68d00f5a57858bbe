"""PostgreSQL work per lead, from pg_stat_database: commits, rollbacks, sessions
opened and rows written in each service's database.

Backends report these counters with a delay (an idle backend flushes them within
about ten seconds), so a snapshot is taken only after the databases have been
quiet for STATS_SETTLE_S."""

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

STATS_SETTLE_S = 11.0
COUNTERS = ("xact_commit", "xact_rollback", "sessions", "tup_inserted", "tup_updated",
            "tup_deleted", "tup_fetched")


@dataclass(frozen=True)
class DatabaseStats:
    by_database: dict[str, dict[str, int]]  # service -> counter -> value


def snapshot(admin_url: str, databases: dict[str, str]) -> DatabaseStats:
    """Counters of each service's database (`databases`: service -> database URL)."""
    names = {str(sa.engine.make_url(url).database): service for service, url in databases.items()}
    columns = ", ".join(COUNTERS)
    query = sa.text(f"SELECT datname, {columns} FROM pg_stat_database WHERE datname = ANY(:n)")
    engine = sa.create_engine(admin_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(query, {"n": list(names)}).mappings().all()
    finally:
        engine.dispose()
    return DatabaseStats(
        {names[r["datname"]]: {c: int(r[c] or 0) for c in COUNTERS} for r in rows}
    )


def per_lead(before: DatabaseStats, after: DatabaseStats, leads: int) -> dict[str, object]:
    """Each counter's growth per lead, per database and summed over them; sessions
    opened are given as a count, not per lead."""
    out: dict[str, object] = {}
    totals = dict.fromkeys(COUNTERS, 0)
    for service, counters in sorted(after.by_database.items()):
        start = before.by_database.get(service, {})
        grown = {c: counters[c] - start.get(c, 0) for c in COUNTERS}
        for c in COUNTERS:
            totals[c] += grown[c]
        out[service] = _shape(grown, leads)
    out["all"] = _shape(totals, leads)
    return out


def _shape(grown: dict[str, int], leads: int) -> dict[str, float | int]:
    shaped: dict[str, float | int] = {"sessions_opened": grown["sessions"]}
    for c in COUNTERS:
        if c != "sessions":
            shaped[f"{c}_per_lead"] = round(grown[c] / leads, 2) if leads else 0
    return shaped


def vacuum(urls: Iterable[str]) -> None:
    """VACUUM ANALYZE each database: every routed event leaves a dead row in
    webhook_logs, and without autovacuum a later load would pay for an earlier
    one's dead rows."""
    for url in urls:
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
        engine.dispose()
