"""Tracing's cost: CPU per lead with tracing on at a 10 % sampling ratio against
tracing off, two stacks of this checkout measured in turns in one run.

    .venv/bin/python -m bench.tracing_cost              # 1-lead webhooks
    .venv/bin/python -m bench.tracing_cost --leads 10
    BENCH_TRACING=1 make bench                          # after the usual phases

bench.ab's rounds (see there): both stacks are up at once and take the load in
turns, off on on off ..., so a slow minute of this shared machine costs both
alike; the figure is the machine's busy CPU per lead, from the first request to
the last credit. Then the same turns at a fixed rate (make bench's fixed_rate
phase, BENCH_RATE webhooks/s, open loop): the ack latency's p99. The "on" stack's
processes export over OTLP (http/protobuf) to a local sink in this process
(tests/support/otlp_receiver.py, counting only, as a Collector's CPU would be
elsewhere), sampling with parentbased_traceidratio 0.1 as production would.
Exits 1 when tracing costs more than 15 % CPU per lead.
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from bench.ab import Stack, compare, start
from bench.leads import LeadBlock
from bench.load import require_wrk, run_openloop
from bench.settings import BenchSettings
from tests.support.otlp_receiver import OtlpReceiver

REPO = Path(__file__).resolve().parents[1]
# Tracing on at 10 % may cost at most this much more CPU per lead (issue 26).
MAX_RATIO = 1.15


def tracing_on(otlp: OtlpReceiver, ratio: float) -> dict[str, str]:
    """The settings of a process that traces as production would, at `ratio`,
    exporting to `otlp` over http/protobuf."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.http_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": str(ratio),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="rounds per stack (6)")
    parser.add_argument("--seconds", type=float, default=8.0, help="load per round (8 s)")
    parser.add_argument("--leads", type=int, default=1, help="leads per webhook (1)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--ratio", type=float, default=0.1, help="sampling ratio (0.1)")
    parser.add_argument("--latency-rounds", type=int, default=3,
                        help="fixed-rate rounds per stack (3; 0: none)")
    parser.add_argument("--latency-seconds", type=float, default=20.0,
                        help="load per fixed-rate round (20 s)")
    args = parser.parse_args()
    require_wrk()
    work = Path(tempfile.mkdtemp(prefix="bench-tracing-"))
    print(f"bench.tracing_cost: tracing off against on at {args.ratio:g} sampling, "
          f"{args.rounds} rounds of {args.seconds:g} s, {args.leads} leads per webhook; "
          f"logs in {work}", flush=True)
    with OtlpReceiver(keep=False) as otlp:
        tracing = tracing_on(otlp, args.ratio)
        stacks = []
        try:
            stacks.append(start("off", REPO, work))
            stacks.append(start("on", REPO, work, tracing))
            ratio = compare(stacks[0], stacks[1], args, work)
            if args.latency_rounds:
                p99 = fixed_rate_p99(stacks, args, work)
        finally:
            for stack in stacks:
                stack.stop()
    if args.latency_rounds:
        print(f"ack p99 at a fixed rate, median of rounds: off {p99['off']:.2f} ms, "
              f"on {p99['on']:.2f} ms ({p99['on'] / p99['off']:.3f})")
    print(f"tracing on / off: CPU per lead {ratio:.3f} (at most {MAX_RATIO}); "
          f"{otlp.requests} exports received, {otlp.received_bytes / 1e6:.1f} MB", flush=True)
    return 0 if ratio <= MAX_RATIO else 1


def fixed_rate_p99(stacks: list[Stack], args: argparse.Namespace, work: Path) -> dict[str, float]:
    """The median over rounds of each stack's ack p99 at BENCH_RATE webhooks/s (open
    loop, one lead each), the stacks in turns."""
    bench = BenchSettings.from_env()
    p99: dict[str, list[float]] = {stack.name: [] for stack in stacks}
    # Lead blocks after those of compare()'s rounds.
    first_phase = 10 + args.rounds * 2
    for number in range(args.latency_rounds * 2):
        stack = stacks[(number + 1) // 2 % 2]
        block = LeadBlock.of_phase(first_phase + number)
        load = run_openloop(
            stack.edge_url + "/webhook/amocrm", first_lead=block.first, leads_per_body=1,
            rate=bench.rate, duration_s=args.latency_seconds,
            max_connections=bench.openloop_connections, timeout_s=bench.request_timeout_s,
            work_dir=work, name=f"{stack.name}-rate{number}",
        )
        stack.wait_credited(block, load.answered_200)
        value = load.latency_ms.get("p99")
        print(f"  {stack.name} at {bench.rate:g}/s round {number}: p99 {value} ms, "
              f"{load.answered_200} answered 200", flush=True)
        if value is not None:
            p99[stack.name].append(value)
    return {name: statistics.median(values) for name, values in p99.items()}


if __name__ == "__main__":
    sys.exit(main())
