"""`python -m bench.log_queries`: the admin log viewer's queries on 1,000,000
webhook_logs rows in PostgreSQL (issue #4's goal: p95 under 50 ms for the first
page and a deep page; #26: the same on the monthly partitions; issue #27's: p95
under 100 ms for the flow chart's time series, whose 30d window spans every row the
fill writes: once per deployment when first asked, then from webhook_flow_buckets).
Prints a table and writes bench/results/log_queries.json.

    BENCH_LOG_SPAN_DAYS=120 python -m bench.log_queries   # rows over 5 monthly partitions

Figures are also given as ratios to a `SELECT 1` round trip measured in the same
run, since absolute times on a shared machine are noisy.
"""

import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from amoroute.timeutil import now
from edge.__main__ import upgrade_database
from edge.flow_series import WINDOWS, FrozenBuckets, buckets_for
from edge.flow_store import FlowBucketStore, flow_buckets
from edge.log_store import LogQuery, WebhookLogStore
from edge.retention import Month
from edge.retention_store import RetentionStore
from edge.settings import Settings
from tests.support.databases import create_database, drop_database

ROWS = int(os.environ.get("BENCH_LOG_ROWS", "1000000"))
# Days the rows are spread over, newest now (about 23 by default: 2 s apart).
SPAN_DAYS = float(os.environ.get("BENCH_LOG_SPAN_DAYS", str(ROWS * 2 / 86400)))
RUNS = int(os.environ.get("BENCH_LOG_RUNS", "60"))
RESULTS = Path(__file__).with_name("results")

FILL = """
INSERT INTO webhook_logs (received_at, source, event, account_id, pipeline_id, status_id,
    lead_id, lead_updated_at, deal_data, utm_source, utm_campaign, routing_decision,
    processing_status, error_message, attempts, processing_ms, processed_at, deal_name)
SELECT now() - make_interval(secs => (:rows - g) * :step),
       (ARRAY['amocrm','amocrm','amocrm','reconcile','replay'])[1 + g % 5],
       'status', 32145678, 10418746, 142, 20000000 + g, 1750000000 + g,
       jsonb_build_object('lead', jsonb_build_object('id', (20000000 + g)::text,
                          'name', 'Сделка #' || g)),
       (ARRAY['kenesary_fb','ref_TEST' || (g % 97),'google_organic','aidana_ig'])[1 + g % 4],
       'camp_' || (g % 31),
       (ARRAY['traffic','referral','unknown','both','ignored'])[1 + g % 5],
       (ARRAY['success','success','success','success','success','success','success',
              'partial','error','pending'])[1 + g % 10],
       CASE WHEN g % 10 = 8 THEN 'traffic: UNAVAILABLE: connection refused' END,
       1, 5 + g % 40, now(), 'Сделка #' || g || ' Курс «Таргетолог PRO»'
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


def figures(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
    }


def main() -> None:
    url = create_database("logbench", Path(tempfile.gettempdir()))
    try:
        settings = Settings(edge_database_url=url)
        upgrade_database(settings)
        engine = sa.create_engine(url)
        # The monthly partitions the rows fall in, as the worker makes them over time.
        newest = Month.of(datetime.now(UTC))
        oldest = Month.of(datetime.now(UTC) - timedelta(days=SPAN_DAYS))
        months = [oldest.plus(n) for n in range(newest.months_after(oldest) + 1)]
        RetentionStore(engine, settings.retention()).make_partitions(months)
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(sa.text(FILL), {"rows": ROWS, "step": SPAN_DAYS * 86400 / ROWS})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE webhook_logs"))
        fill_s = time.perf_counter() - started
        store = WebhookLogStore(engine)
        deep = store.search(LogQuery(limit=1)).items[0]["id"] - ROWS // 2

        shelf = FlowBucketStore(engine)
        frozen = FrozenBuckets(shelf)

        def flow(window: str, case: str) -> Callable[[], object]:
            """The time series as the API computes it: `later`, a process's later calls
            (frozen buckets kept in memory); `first call`, a process's first (they are
            read from webhook_flow_buckets); `first ever`, none kept anywhere."""

            def run() -> object:
                moment = now()
                cache = frozen if case == "later" else FrozenBuckets(shelf)
                if case == "first ever":
                    with engine.begin() as conn:
                        conn.execute(sa.delete(flow_buckets))
                return cache.series(buckets_for(window, moment), moment, store.flow_series)

            return run

        def ping() -> None:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        cases: dict[str, Callable[[], object]] = {
            "select 1 (baseline)": ping,
            "first page, no filter": lambda: store.search(LogQuery(limit=50)),
            "first page, status=error": lambda: store.search(LogQuery(statuses=("error",))),
            "first page, routing=traffic": lambda: store.search(LogQuery(decisions=("traffic",))),
            "deep page (cursor at half), no filter": lambda: store.search(
                LogQuery(before_id=deep)),
            "deep page (cursor at half), status=error": lambda: store.search(
                LogQuery(statuses=("error",), before_id=deep)),
            "lead_id": lambda: store.search(LogQuery(lead_id=20000000 + ROWS // 3)),
            "search q='Таргетолог', first page": lambda: store.search(LogQuery(text="Таргетолог")),
            "search q='ref_TEST42', first page": lambda: store.search(LogQuery(text="ref_TEST42")),
            **{
                f"time series {window}{'' if case == 'later' else ', ' + case}": flow(
                    window, case)
                for window in WINDOWS
                for case in ("first ever", "first call", "later")
            },
        }
        results = {name: figures(timed(fn)) for name, fn in cases.items()}
        base = results["select 1 (baseline)"]["p50_ms"] or 0.01
        print(f"webhook_logs rows: {ROWS:,} over {SPAN_DAYS:.0f} days, {len(months)} monthly "
              f"partitions (filled in {fill_s:.0f} s); {RUNS} runs per query")
        print(f"{'query':45} {'p50 ms':>8} {'p95 ms':>8} {'p50 / SELECT 1':>15}")
        for name, fig in results.items():
            print(f"{name:45} {fig['p50_ms']:8.2f} {fig['p95_ms']:8.2f} "
                  f"{fig['p50_ms'] / base:14.1f}x")
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "log_queries.json").write_text(
            json.dumps(
                {"rows": ROWS, "span_days": SPAN_DAYS, "partitions": len(months), "runs": RUNS,
                 "queries": results},
                indent=2,
            )
        )
        engine.dispose()
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
