"""`python -m bench.route_batches`: CPU per deal of routing, by batch size.

Starts the whole stack on PostgreSQL (tests/support/stack.py) and sends
BatchRouteDeals straight to router_svc, one call at a time, for
BENCH_ROUTE_DEALS (5,000) new won deals at each batch size in
BENCH_ROUTE_BATCHES (1,5,25,100,200). Prints, per batch size, deals/s and the
CPU each process used per deal: router, traffic, notifier and the PostgreSQL
server. What does not fall with the batch size is the per-deal cost; the rest
is each call's fixed cost, which bigger batches share out."""

import os
import tempfile
import time
from pathlib import Path

from amoroute.channels import channel
from amoroute.v1 import router_pb2, router_pb2_grpc
from bench.procstats import ProcessWatch, cpu_delta
from bench.run import postmaster_pid
from edge.amocrm_form import FormLimits
from edge.webhook import intake
from tests.support.databases import create_database, drop_database
from tests.support.forms import encode, won_deal_body
from tests.support.stack import start_stack

DEALS = int(os.environ.get("BENCH_ROUTE_DEALS", "5000"))
BATCHES = [int(b) for b in os.environ.get("BENCH_ROUTE_BATCHES", "1,5,25,100,200").split(",")]
FORM = "application/x-www-form-urlencoded"
MEASURED = ("router_svc", "traffic_svc", "notifier_svc", "postgres")


def requests(first_lead: int, count: int) -> list[router_pb2.RouteDealRequest]:
    out = []
    for lead in range(first_lead, first_lead + count):
        deal = intake(encode(won_deal_body(lead, "kenesary_fb")), FORM, FormLimits())[1][0]
        out.append(router_pb2.RouteDealRequest(deal=deal))
    return out


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-route-"))
    databases = {
        name: create_database(f"bench_route_{name}", work)
        for name in ("edge", "referral", "traffic", "notifier")
    }
    rows = []
    try:
        running = start_stack(databases, work, AMOCRM_DOMAIN="onaiagencykz", WEBHOOK_SECRET="")
        try:
            stack = running.stack
            watch = ProcessWatch({n: p.pid for n, p in stack.procs.items() if n in MEASURED})
            trees = {"postgres": postmaster_pid() or 0}
            with channel(running.addr("router"), running.operator) as router_channel:
                router = router_pb2_grpc.RouterServiceStub(router_channel)
                lead = 1
                for size in BATCHES:
                    deals = requests(lead, DEALS)
                    lead += DEALS
                    before = watch.cpu(trees=trees)
                    started = time.monotonic()
                    for at in range(0, DEALS, size):
                        batch = router_pb2.BatchRouteDealsRequest(requests=deals[at : at + size])
                        router.BatchRouteDeals(batch, timeout=30)
                    elapsed = time.monotonic() - started
                    used = cpu_delta(before, watch.cpu(trees=trees))
                    rows.append((size, DEALS / elapsed, {n: used.get(n, 0.0) for n in MEASURED}))
        finally:
            running.stack.stop()
    finally:
        for url in databases.values():
            drop_database(url)
    print(f"{DEALS:,} deals per batch size, one BatchRouteDeals call at a time")
    print("batch  deals/s  " + "  ".join(f"{n + ' us/deal':>20}" for n in MEASURED))
    for size, rate, used in rows:
        cells = "  ".join(f"{used[n] / DEALS * 1e6:>20,.0f}" for n in MEASURED)
        print(f"{size:>5}  {rate:>7,.0f}  {cells}")


if __name__ == "__main__":
    main()
