"""The pace of bulk replay against live webhooks: ack latency of the `fixed_rate` load
(open loop at BENCH_RATE webhooks/s, 1 lead each, as `make bench`) without a bulk replay
job, then with one replaying BENCH_REPLAY_EVENTS stored events at BULK_REPLAY_RATE.

    python -m bench.bulk_replay
    BENCH_DURATION_S=30 BENCH_REPLAY_EVENTS=20000 BULK_REPLAY_RATE=50 python -m bench.bulk_replay

Target: the p99 with the job is within 2x of the p99 without it. Prints both and exits 1
when the target is missed."""

import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from bench.load import run_openloop
from edge.amocrm_form import FormLimits
from edge.log_store import WebhookLogStore
from edge.webhook import intake
from tests.support.databases import create_database, drop_database
from tests.support.fake_telegram import FakeTelegram
from tests.support.forms import encode, won_deal_body
from tests.support.stack import start_stack

TOKEN = "bench-admin-token-0123456789abcdef"
FORM = "application/x-www-form-urlencoded"


def seed(database_url: str, events: int) -> None:
    """`events` routed events in the edge's log, as the edge logs them."""
    engine = sa.create_engine(database_url)
    store = WebhookLogStore(engine)
    seeded = 0
    for start in range(0, events, 100):
        body = encode(*(won_deal_body(700_000_000 + n, "kenesary_fb", index=n - start)
                        for n in range(start, min(start + 100, events))))
        rows, _ = intake(body, FORM, FormLimits())
        seeded += len(store.insert([
            dataclasses.replace(r, processing_status="success", routing_decision="traffic")
            for r in rows if r.lead_id is not None]))
    engine.dispose()
    if seeded != events:
        raise SystemExit(f"seeded {seeded} events, not {events}")


def main() -> int:
    rate = float(os.environ.get("BENCH_RATE", "500"))
    duration_s = float(os.environ.get("BENCH_DURATION_S", "30"))
    events = int(os.environ.get("BENCH_REPLAY_EVENTS", "20000"))
    replay_rate = os.environ.get("BULK_REPLAY_RATE", "50")
    work_dir = Path(tempfile.mkdtemp(prefix="bench-bulk-"))
    databases: dict[str, str] = {}
    try:
        for name in ("edge", "referral", "traffic", "notifier"):
            databases[name] = create_database(f"bench_{name}", work_dir)
        with FakeTelegram() as telegram:
            running = start_stack(
                databases, work_dir, TELEGRAM_API_URL=telegram.url,
                TELEGRAM_BOT_TOKEN="123456:bench-token", AMOCRM_DOMAIN="onaiagencykz",
                WEBHOOK_SECRET="", ADMIN_TOKEN=TOKEN, BULK_REPLAY_RATE=replay_rate,
            )
            try:
                seed(databases["edge"], events)
                url = f"{running.edge_url}/webhook/amocrm"
                admin = httpx.Client(base_url=running.edge_url, timeout=30,
                                     headers={"Authorization": f"Bearer {TOKEN}"})

                def load(name: str, first_lead: int, seconds: float) -> dict:
                    result = run_openloop(url, first_lead=first_lead, leads_per_body=1,
                                          rate=rate, duration_s=seconds, max_connections=256,
                                          timeout_s=30, work_dir=work_dir, name=name)
                    return result.latency_ms

                load("warm_up", 800_000_000, 5)
                time.sleep(3)
                without = load("without_job", 810_000_000, duration_s)
                time.sleep(3)
                started = admin.post("/api/admin/webhook-logs/replay",
                                     json={"filters": {"q": "Сделка #7"}})
                job = started.json()["job"]
                time.sleep(2)  # the worker claims it
                with_job = load("with_job", 820_000_000, duration_s)
                progress = admin.get(f"/api/admin/jobs/{job['id']}").json()
                admin.delete(f"/api/admin/jobs/{job['id']}")
                admin.close()
            finally:
                running.stack.stop()
    finally:
        for url_ in databases.values():
            drop_database(url_)
        shutil.rmtree(work_dir, ignore_errors=True)
    print(f"bulk replay bench: {rate:g} webhooks/s for {duration_s:g} s, job over "
          f"{job['total']} events at BULK_REPLAY_RATE={replay_rate}")
    print(f"  ack latency ms without a job: {without}")
    print(f"  ack latency ms with the job:  {with_job}")
    print(f"  job during the load: {progress['state']}, {progress['done']} of "
          f"{progress['total']} replayed")
    p99_without, p99_with = without["p99"], with_job["p99"]
    within = p99_without is not None and p99_with is not None and p99_with <= 2 * p99_without
    ratio = round(p99_with / p99_without, 2) if p99_with and p99_without else None
    print(f"  p99 with / without: {ratio} (target: at most 2)")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
