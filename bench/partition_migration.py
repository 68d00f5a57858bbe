"""`python -m bench.partition_migration`: how long migration 0011 (webhook_logs and
webhook_attempts partitioned by month) takes on PostgreSQL with 1,000,000 logs and an
attempt each, spread over the last 4 months, and that every row is still there after it.

The migration locks both tables against writes for all of that time (reads go on until the
final swap), so this is how long webhooks cannot be logged if the edges keep running.
Prints the figures and writes bench/results/partition_migration.json.

    BENCH_LOG_ROWS=1000000 python -m bench.partition_migration
"""

import json
import os
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from amoroute.db import migrate
from bench.log_queries import FILL
from edge.__main__ import MIGRATIONS, VERSION_TABLE
from tests.support.databases import create_database, drop_database

ROWS = int(os.environ.get("BENCH_LOG_ROWS", "1000000"))
RESULTS = Path(__file__).with_name("results")
# The rows spread over about 4 months (120 days), as a 90-day retention leaves them.
SPAN_S = 120 * 86400
ATTEMPTS = """
INSERT INTO webhook_attempts (log_id, attempt, at, status, routing_decision, duration_ms)
SELECT id, 1, received_at, processing_status, routing_decision, 5 FROM webhook_logs
"""


def count(engine: sa.Engine, table: str) -> tuple[int, int]:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*), coalesce(sum(id), 0) FROM {table}")).one()


def main() -> None:
    url = create_database("partbench", Path(tempfile.gettempdir()))
    try:
        migrate(url, MIGRATIONS, VERSION_TABLE, "0010")
        engine = sa.create_engine(url)
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(sa.text(FILL), {"rows": ROWS, "step": SPAN_S / ROWS})
            conn.execute(sa.text(ATTEMPTS))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE webhook_logs"))
            conn.execute(sa.text("VACUUM ANALYZE webhook_attempts"))
        fill_s = time.perf_counter() - started
        before = count(engine, "webhook_logs"), count(engine, "webhook_attempts")

        started = time.perf_counter()
        migrate(url, MIGRATIONS, VERSION_TABLE, "0011")
        migrate_s = time.perf_counter() - started

        after = count(engine, "webhook_logs"), count(engine, "webhook_attempts")
        with engine.connect() as conn:
            partitions = conn.execute(
                sa.text(
                    "SELECT c.relname, c.reltuples::bigint FROM pg_inherits i "
                    "JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'webhook_logs'::regclass ORDER BY c.relname"
                )
            ).all()
        engine.dispose()
        print(f"webhook_logs rows: {ROWS:,} with an attempt each (filled in {fill_s:.0f} s)")
        print(f"migration 0011: {migrate_s:.1f} s")
        print(f"rows (count, sum of ids) before {before}, after {after}: "
              f"{'all kept' if before == after else 'DIFFERENT'}")
        for name, rows in partitions:
            print(f"  {name:32} ~{rows:,} rows")
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "partition_migration.json").write_text(
            json.dumps(
                {"rows": ROWS, "migrate_s": round(migrate_s, 2), "kept": before == after},
                indent=2,
            )
        )
        if before != after:
            raise SystemExit(1)
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
