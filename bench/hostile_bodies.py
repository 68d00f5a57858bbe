"""`python -m bench.hostile_bodies`: what the worst bodies within the limits cost.

1. Parse: parse_form + lead_events of each worst body in this process, best and
   median of `--rounds`.
2. Edge: a real edge (gunicorn, `EDGE_WORKERS` x `EDGE_THREADS` as in production,
   on a fresh PostgreSQL database, router unreachable so nothing downstream
   competes) answers each worst body alone (logged within 1 s is the goal), then
   a normal one-lead webhook while four of a worst body are in flight (its answer
   within 200 ms is the goal), and the edge workers' peak RSS (VmHWM).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.procstats import children_of, peak_rss_kib
from edge.__main__ import upgrade_database
from edge.amocrm_form import lead_events, parse_form
from edge.settings import Settings
from tests.support.databases import create_database, drop_database
from tests.support.forms import encode, won_deal_body
from tests.support.hostile_bodies import (
    deep_fields_body,
    deep_leads_body,
    padded_account_body,
    wide_lead_body,
)
from tests.support.stack import free_port

REPO = Path(__file__).resolve().parents[1]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
WORST = {
    "deep_fields (the issue's 588 KB body)": deep_fields_body,
    "deep_leads (most containers allowed)": deep_leads_body,
    "wide_lead (a container per field)": wide_lead_body,
    "padded_account (500 leads, 1 MiB)": padded_account_body,
}


def parse_figures(rounds: int) -> None:
    print("PARSE (parse_form + lead_events), ms")
    for name, make in WORST.items():
        body = make()
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            lead_events(parse_form(body))
            times.append((time.perf_counter() - started) * 1000)
        print(f"  {name:42} {len(body):>9,} B  best {min(times):6.1f}  "
              f"median {statistics.median(times):6.1f}  max {max(times):6.1f}")


def start_edge(url: str, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "EDGE_DATABASE_URL": url, "EDGE_PORT": str(port),
           "ROUTER_ADDR": "127.0.0.1:9", "ROUTER_DEADLINE_S": "0.3", "LOG_LEVEL": "WARNING"}
    log = open(work / "edge.log", "wb")  # noqa: SIM115 (the child writes to it for its life)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "edge/gunicorn_conf.py", "edge.app:create_app()"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    edge = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(edge + "/healthz", timeout=1).status_code == 200:
                return proc, edge
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"edge did not start: see {work / 'edge.log'}")


def post(edge: str, body: bytes) -> tuple[int, float]:
    started = time.perf_counter()
    reply = httpx.post(edge + "/webhook/amocrm", content=body, headers=FORM, timeout=30)
    return reply.status_code, (time.perf_counter() - started) * 1000


def edge_figures(edge: str, worker_pids: list[int], rounds: int) -> None:
    normal = encode(won_deal_body(1, "kenesary_fb"))
    for _ in range(20):  # warm up every worker
        post(edge, normal)
    print("EDGE (gunicorn, PostgreSQL), ms from request to the 200 answer (logged)")
    lead = 1000
    for name, make in WORST.items():
        body = make()
        alone = [post(edge, body) for _ in range(rounds)]
        statuses = {status for status, _ in alone}
        normal_ms: list[float] = []
        for _ in range(rounds):
            threads = [threading.Thread(target=post, args=(edge, body)) for _ in range(4)]
            for t in threads:
                t.start()
            time.sleep(0.05)  # the four are being parsed
            while any(t.is_alive() for t in threads):
                lead += 1
                status, ms = post(edge, encode(won_deal_body(lead, "kenesary_fb")))
                statuses.add(status)
                normal_ms.append(ms)
            for t in threads:
                t.join()
        times = [ms for _, ms in alone]
        print(f"  {name:42} alone: median {statistics.median(times):6.1f} max {max(times):6.1f}"
              f" | one-lead webhook beside four: median {statistics.median(normal_ms):6.1f}"
              f" max {max(normal_ms):6.1f} (n={len(normal_ms)}) | answers {sorted(statuses)}")
    peak = max(peak_rss_kib(pid) or 0 for pid in worker_pids)
    print(f"PEAK RSS of the edge workers (VmHWM): {peak / 1024:.0f} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="rounds per figure (10)")
    args = parser.parse_args()
    parse_figures(args.rounds * 3)
    work = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    url = create_database("bench_hostile", work)
    proc = None
    try:
        upgrade_database(Settings(edge_database_url=url))
        proc, edge = start_edge(url, work)
        edge_figures(edge, children_of(proc.pid), args.rounds)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        drop_database(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
