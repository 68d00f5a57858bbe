"""`python -m bench.edge_writes`: the edge's two hot writes on PostgreSQL, in
process: logging webhook rows (WebhookLogStore.insert_on) and recording
routing outcomes (record_outcomes), each on the JSON-parameter path the
edge uses on PostgreSQL and on the per-row executemany path (SQLite's),
measured in the same run on the same table.

Reports client CPU and PostgreSQL backend CPU per row (the backend's
/proc/<pid>/stat, so PostgreSQL must run on this machine). Writes
bench/results/edge_writes.json.
"""

import json
import os
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from amoroute.db import create_engine
from edge.__main__ import upgrade_database
from edge.amocrm_form import FormLimits
from edge.event_lifecycle import Outcome
from edge.log_store import NewLog, WebhookLogStore
from edge.settings import Settings
from edge.webhook import intake
from tests.support.databases import create_database, drop_database
from tests.support.forms import encode, won_deal_body

ROWS = int(os.environ.get("BENCH_EDGE_ROWS", "100000"))
OUTCOMES = int(os.environ.get("BENCH_EDGE_OUTCOMES", "20000"))
OUTCOME_BATCH = 50
RESULTS = Path(__file__).with_name("results")


def backend_cpu_s(engine: sa.Engine) -> float:
    """CPU seconds used so far by every backend connected to the bench's database."""
    with engine.connect() as conn:
        pids = conn.execute(
            sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ).scalars()
        total = 0.0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().split()
            total += (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    return total


def measure(engine: sa.Engine, count: int, work) -> dict[str, float]:  # type: ignore[no-untyped-def]
    backend, client = backend_cpu_s(engine), time.process_time()
    work()
    return {
        "client_us": (time.process_time() - client) / count * 1e6,
        "postgres_us": (backend_cpu_s(engine) - backend) / count * 1e6,
    }


def main() -> None:
    url = create_database("bench_edge_writes", Path(tempfile.gettempdir()))
    try:
        upgrade_database(Settings(edge_database_url=url))
        engine = create_engine(url, pool_size=2)
        store = WebhookLogStore(engine)
        body = encode(won_deal_body(1, "kenesary_fb"))
        rows: list[NewLog] = intake(body, "application/x-www-form-urlencoded", FormLimits())[0]
        ids: list[int] = []
        for _ in range(ROWS // 250):
            ids += store.insert(rows * 250)
        results: dict[str, dict[str, float]] = {}
        for json_path in (True, False):
            store.postgres = json_path
            name = "json" if json_path else "executemany"
            with store.writing() as conn:
                for batch in (1, 8):
                    results[f"insert {batch} row(s), {name}"] = measure(
                        engine,
                        1000 * batch,
                        lambda batch=batch: [
                            store.insert_on(conn, rows * batch) for _ in range(1000)
                        ],
                    )
            # Each path records the outcomes of its own, untouched rows.
            mine = ids[:OUTCOMES] if json_path else ids[OUTCOMES : 2 * OUTCOMES]

            def record(mine: list[int] = mine) -> None:
                for start in range(0, len(mine), OUTCOME_BATCH):
                    store.record_outcomes(
                        [
                            Outcome(
                                i,
                                "success",
                                decision="traffic",
                                utm_source="kenesary_fb",
                                utm_campaign="june",
                                legs={"traffic": "recorded", "notifier": "recorded"},
                            )
                            for i in mine[start : start + OUTCOME_BATCH]
                        ]
                    )

            results[f"record outcome (batches of {OUTCOME_BATCH}), {name}"] = measure(
                engine, len(mine), record
            )
        engine.dispose()
    finally:
        drop_database(url)
    report(f"edge writes on PostgreSQL, {ROWS:,} rows in webhook_logs; CPU per row", results,
           "edge_writes.json")


def report(title: str, results: dict[str, dict[str, float]], file_name: str) -> None:
    """Print the CPU figures of measure() as a table; write them to bench/results/."""
    width = max(len(name) for name in results) + 2
    print(title)
    print(f"{'write':<{width}}{'client us':>10}{'postgres us':>13}")
    for name, figures in results.items():
        print(f"{name:<{width}}{figures['client_us']:>10.0f}{figures['postgres_us']:>13.0f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / file_name).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
