"""`python -m bench.review_queue`: the review queue's query (unknown sales grouped by raw UTM
marks, edge/review_store.py) on webhook_logs rows in PostgreSQL: every lead has a few events,
a share of them routed `unknown` with drifted sources, some credited later. Prints p50/p95 of
the whole queue and of a 7-day range, and the plan of the whole queue.

BENCH_REVIEW_ROWS (default 1,000,000) rows, BENCH_REVIEW_RUNS (default 20) runs each.
"""

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from amoroute.timeutil import now
from edge.__main__ import upgrade_database
from edge.review_store import ReviewStore
from edge.settings import Settings
from tests.support.databases import create_database, drop_database

ROWS = int(os.environ.get("BENCH_REVIEW_ROWS", "1000000"))
RUNS = int(os.environ.get("BENCH_REVIEW_RUNS", "20"))

# Three events per lead on average; one in twenty routed unknown, with 600 spellings of
# sources; a lead's later event may credit it or take it out of won (ignored).
FILL = """
INSERT INTO webhook_logs (received_at, source, event, account_id, pipeline_id, status_id,
    lead_id, lead_updated_at, deal_data, utm_source, utm_campaign, routing_decision,
    processing_status, attempts, processing_ms, processed_at, deal_name)
SELECT now() - make_interval(secs => (:rows - g) * 5),
       'amocrm', 'status', 32145678, 10418746, 142, 30000000 + g % (:rows / 3 + 1),
       1750000000 + g,
       jsonb_build_object('lead', jsonb_build_object('id', (30000000 + g % (:rows / 3 + 1))::text,
                          'price', ((g % 50) * 1000)::text)),
       (ARRAY['Kenesary-FB','kenesary fb','kenesry_fb','REF-abc' || (g % 200),
              'google','aidana_ig','src_' || (g % 400)])[1 + (g / 20) % 7],
       'camp_' || (g % 13),
       CASE WHEN g % 20 = 0 THEN 'unknown'
            ELSE (ARRAY['traffic','referral','ignored','both'])[1 + g % 4] END,
       'success', 1, 5, now(), 'Сделка #' || g
FROM generate_series(1, :rows) AS g
"""


def timed(fn: Callable[[], object]) -> list[float]:
    fn()  # warm
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def show(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(f"{name:<24} p50 {statistics.median(ordered):8.1f} ms   p95 {p95:8.1f} ms")


def main() -> None:
    url = create_database("bench_review", Path(tempfile.mkdtemp()))
    try:
        upgrade_database(Settings(edge_database_url=url))
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text(FILL), {"rows": ROWS})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE webhook_logs"))
        store = ReviewStore(engine)
        groups = store.unknown_sales(None, None)
        print(
            f"{ROWS:,} rows; {len(groups)} raw groups, "
            f"{sum(g.count for g in groups):,} unknown sales"
        )
        show("whole queue", timed(lambda: store.unknown_sales(None, None)))
        week = now() - timedelta(days=7)
        show("received in 7 days", timed(lambda: store.unknown_sales(week, None)))
        engine.dispose()
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
