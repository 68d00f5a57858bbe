"""A/B: the CPU each lead costs in two checkouts, measured in turns in one run.

    git worktree add ../amoroute-before HEAD~1
    .venv/bin/python -m bench.ab ../amoroute-before .          # 10-lead bodies
    .venv/bin/python -m bench.ab ../amoroute-before . --leads 1

On this machine the same code's rate moves by ±15 % from one minute to the next,
so two `make bench` runs cannot tell a 5 % change. Here both stacks (each from its
own checkout, on its own four databases) are up at once and take the load in
turns, A B B A A B ..., so a slow minute costs both alike. Each round drives one
stack with wrk (closed loop, 32 connections) and waits until every answered lead
is credited; the figure is the machine's busy CPU (/proc/stat, steal left out)
from the first request to the last credit, per lead, with the drain included.
The medians of the rounds and their ratio B / A are printed at the end.

Each stack runs the checkout's own code on this venv's packages; the load,
the warm-up and the counting of credits are this checkout's."""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.accounting import Ledger
from bench.delivery import post_leads
from bench.leads import LeadBlock
from bench.load import require_wrk, run_wrk
from bench.pgstats import vacuum
from bench.procstats import machine_cpu_s

# Run in each checkout (its directory first on sys.path): start its stack, say
# where it is, keep it up until stdin closes.
_STACK = """
import json, os, sys
from pathlib import Path
sys.path.insert(0, os.getcwd())
from tests.support.databases import create_database, drop_database
from tests.support.fake_telegram import FakeTelegram
from tests.support.stack import start_stack
tag, work = sys.argv[1], Path(sys.argv[2])
# More settings of the stack's processes (bench.tracing_cost: the OTEL_* variables).
extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
databases = {}
try:
    for name in ("edge", "referral", "traffic", "notifier"):
        databases[name] = create_database(f"ab_{tag}_{name}", work)
    with FakeTelegram() as telegram:
        running = start_stack(databases, work, TELEGRAM_API_URL=telegram.url,
                              TELEGRAM_BOT_TOKEN="123456:bench-token",
                              AMOCRM_DOMAIN="onaiagencykz", WEBHOOK_SECRET="", **extra)
        print(json.dumps({"edge_url": running.edge_url, "databases": databases}), flush=True)
        sys.stdin.read()
        running.stack.stop()
finally:
    for url in databases.values():
        drop_database(url)
"""
WARM_UP_LEADS = 64
CREDIT_TIMEOUT_S = 120.0
# Often enough that the credited rate is not off by a poll's wait.
CREDIT_POLL_S = 0.2


@dataclass
class Stack:
    name: str
    proc: subprocess.Popen[str]
    edge_url: str
    databases: dict[str, str]
    ledger: Ledger

    def wait_credited(self, block: LeadBlock, expected: int) -> None:
        if not self.ledger.wait_credited(block, expected, CREDIT_TIMEOUT_S, CREDIT_POLL_S):
            raise SystemExit(
                f"stack {self.name}: {expected} leads not credited within {CREDIT_TIMEOUT_S} s"
            )

    def stop(self) -> None:
        self.ledger.close()
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start(name: str, checkout: Path, work: Path, env: dict[str, str] | None = None) -> Stack:
    """Start a stack of `checkout`'s code, its processes with `env` added to their settings."""
    log = open(work / f"{name}.log", "w")  # noqa: SIM115 (the child writes to it for its life)
    proc = subprocess.Popen(
        [sys.executable, "-c", _STACK, name, str(work), json.dumps(env or {})],
        cwd=checkout, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
    )
    assert proc.stdout is not None
    line = " "
    while line and not line.startswith("{"):  # migrations print first
        line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"stack {name} ({checkout}) did not start: see {work / (name + '.log')}")
    info = json.loads(line)
    dbs = info["databases"]
    stack = Stack(name, proc, info["edge_url"], dbs,
                  Ledger(dbs["edge"], dbs["traffic"], dbs["notifier"]))
    block = LeadBlock.of_phase(9)
    post_leads(stack.edge_url, list(range(block.first, block.first + WARM_UP_LEADS)))
    stack.wait_credited(block, WARM_UP_LEADS)
    return stack


@dataclass(frozen=True)
class Round:
    cpu_us_per_lead: float
    ack_webhooks_per_s: float
    credited_leads_per_s: float


def one_round(stack: Stack, number: int, args: argparse.Namespace, work: Path) -> Round:
    vacuum(stack.databases.values())
    block = LeadBlock.of_phase(10 + number)
    busy0, steal0 = machine_cpu_s()
    started = time.monotonic()
    load = run_wrk(
        stack.edge_url + "/webhook/amocrm", first_lead=block.first, leads_per_body=args.leads,
        duration_s=args.seconds, connections=args.connections, threads=1, timeout_s=30,
        work_dir=work, name=f"{stack.name}{number}",
    )
    # Leads of answered webhooks; those wrk dropped at its stop may be credited
    # too, so the wait is for at least these.
    leads = load.answered_200 * args.leads
    stack.wait_credited(block, leads)
    elapsed = time.monotonic() - started
    busy1, steal1 = machine_cpu_s()
    result = Round(
        # Steal left out: time the hypervisor gave elsewhere is not this code's.
        cpu_us_per_lead=((busy1 - steal1) - (busy0 - steal0)) / leads * 1e6,
        ack_webhooks_per_s=load.answered_200 / load.active_s,
        credited_leads_per_s=leads / elapsed,
    )
    print(f"  {stack.name} round {number}: {result.cpu_us_per_lead:6.0f} us/lead, "
          f"ack {result.ack_webhooks_per_s:7.1f} webhooks/s, credited "
          f"{result.credited_leads_per_s:7.1f} leads/s, steal "
          f"{(steal1 - steal0) / elapsed:.2f} cores", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="checkout A (the reference)")
    parser.add_argument("b", type=Path, help="checkout B")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per checkout (6)")
    parser.add_argument("--seconds", type=float, default=8.0, help="load per round (8 s)")
    parser.add_argument("--leads", type=int, default=10, help="leads per webhook (10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    args = parser.parse_args()
    require_wrk()
    work = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    print(f"bench.ab: A = {args.a}, B = {args.b}, {args.rounds} rounds of {args.seconds:g} s, "
          f"{args.leads} leads per webhook; logs in {work}", flush=True)
    stacks: list[Stack] = []
    try:
        for name, checkout in (("A", args.a), ("B", args.b)):
            stacks.append(start(name, checkout.resolve(), work))
        compare(stacks[0], stacks[1], args, work)
    finally:
        for stack in stacks:
            stack.stop()
    return 0


def compare(a_stack: Stack, b_stack: Stack, args: argparse.Namespace, work: Path) -> float:
    """Rounds in turns on two running stacks; prints the medians and returns B / A of
    the median CPU per lead."""
    rounds: dict[str, list[Round]] = {a_stack.name: [], b_stack.name: []}
    for number in range(args.rounds * 2):
        # A B B A A B ...: neither side always goes first after the other's drain.
        stack = (a_stack, b_stack)[(number + 1) // 2 % 2]
        rounds[stack.name].append(one_round(stack, number, args, work))
    medians = {
        name: Round(*(statistics.median(getattr(r, f) for r in rs) for f in Round.__annotations__))
        for name, rs in rounds.items()
    }
    for name, m in medians.items():
        print(f"{name}: median {m.cpu_us_per_lead:.0f} us/lead, ack {m.ack_webhooks_per_s:.1f} "
              f"webhooks/s, credited {m.credited_leads_per_s:.1f} leads/s")
    a, b = medians[a_stack.name], medians[b_stack.name]
    wins = sum(rb.cpu_us_per_lead < ra.cpu_us_per_lead
               for ra, rb in zip(rounds[a_stack.name], rounds[b_stack.name], strict=True))
    ratio = b.cpu_us_per_lead / a.cpu_us_per_lead
    print(f"{b_stack.name} / {a_stack.name}: CPU per lead {ratio:.3f}, credited leads/s "
          f"{b.credited_leads_per_s / a.credited_leads_per_s:.3f}; {b_stack.name} cheaper in "
          f"{wins} of {args.rounds} rounds paired in order")
    return ratio


if __name__ == "__main__":
    sys.exit(main())
