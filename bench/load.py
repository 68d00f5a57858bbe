"""The load generators, each a process of its own: wrk for closed-loop phases,
bench.openloop for the fixed-rate phase. Both report which webhook_logs ids the
edge returned in its 200 answers, so acknowledged leads can be told exactly."""

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LUA_SCRIPT = Path(__file__).with_name("wrk") / "unique_leads.lua"


@dataclass(frozen=True)
class LoadResult:
    """What one load generator did in one phase."""

    generator: str  # "wrk" or "openloop"
    started_at: float  # wall clock (time.time()) when the load began
    duration_s: float  # how long it sent
    active_s: float  # from the first send to the last answer
    leads_per_body: int
    answered: int  # requests answered, whatever the status
    answered_200: int
    statuses: dict[str, int]  # other answers, by HTTP status
    errors: dict[str, int]  # no answer: connect / read / write / timeout
    generated_leads: list[int]  # every lead id put in a request (or scheduled to be)
    acked_log_ids: list[int]  # webhook_logs ids named by the 200 answers
    latency_ms: dict[str, float | None]
    generator_cpu_s: float
    extra: dict[str, Any] = field(default_factory=dict)


def _child_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: `apt-get install -y wrk` (make bench does it)")
    return path


def run_wrk(
    url: str,
    *,
    first_lead: int,
    leads_per_body: int,
    duration_s: float,
    connections: int,
    threads: int,
    timeout_s: float,
    work_dir: Path,
    name: str,
) -> LoadResult:
    """Closed loop: `connections` connections each send the next webhook as soon as
    the previous one is answered, for `duration_s`."""
    out = work_dir / f"{name}.wrk.json"
    env = {
        **os.environ,
        "BENCH_FIRST_LEAD": str(first_lead),
        "BENCH_LEADS_PER_BODY": str(leads_per_body),
        "BENCH_WRK_OUT": str(out),
    }
    argv = [
        require_wrk(),
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "-s",
        str(LUA_SCRIPT),
        url,
    ]
    cpu_before = _child_cpu_s()
    started = time.time()
    with open(work_dir / f"{name}.wrk.txt", "wb") as log:
        subprocess.run(argv, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    data = json.loads(out.read_text())
    generated = [
        thread["first_lead"] + k
        for thread in data["threads"]
        for k in range(thread["generated"] * leads_per_body)
    ]
    statuses: dict[str, int] = {}
    for thread in data["threads"]:
        for status, n in thread["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    latency = data["latency_us"]
    return LoadResult(
        generator="wrk",
        started_at=started,
        duration_s=data["duration_us"] / 1e6,
        active_s=data["duration_us"] / 1e6,
        leads_per_body=leads_per_body,
        answered=data["responses"],
        answered_200=sum(thread["acked"] for thread in data["threads"]),
        statuses=statuses,
        errors={k: v for k, v in data["errors"].items() if k != "status"},
        generated_leads=generated,
        acked_log_ids=[int(i) for thread in data["threads"] for i in thread["log_ids"]],
        latency_ms={k: latency[k] / 1000 for k in ("mean", "p50", "p90", "p99", "max")},
        generator_cpu_s=_child_cpu_s() - cpu_before,
        extra={"connections": connections, "threads": threads},
    )


def run_openloop(
    url: str,
    *,
    first_lead: int,
    leads_per_body: int,
    rate: float,
    duration_s: float,
    max_connections: int,
    timeout_s: float,
    work_dir: Path,
    name: str,
) -> LoadResult:
    """Open loop: a webhook every 1/rate seconds whatever the answers (bench.openloop)."""
    out = work_dir / f"{name}.openloop.json"
    argv = [
        sys.executable,
        "-m",
        "bench.openloop",
        "--url",
        url,
        "--rate",
        str(rate),
        "--duration-s",
        str(duration_s),
        "--first-lead",
        str(first_lead),
        "--leads-per-body",
        str(leads_per_body),
        "--max-connections",
        str(max_connections),
        "--timeout-s",
        str(timeout_s),
        "--out",
        str(out),
    ]
    cpu_before = _child_cpu_s()
    with open(work_dir / f"{name}.openloop.txt", "wb") as log:
        subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=True)
    data = json.loads(out.read_text())
    return LoadResult(
        generator="openloop",
        started_at=data["started_at"],
        duration_s=data["sending_s"],
        active_s=data["answering_s"],
        leads_per_body=leads_per_body,
        answered=data["answered"],
        answered_200=data["answered_200"],
        statuses=data["statuses"],
        errors=data["errors"],
        generated_leads=[
            first_lead + k for k in range(data["scheduled"] * leads_per_body)
        ],
        acked_log_ids=data["log_ids"],
        latency_ms=data["latency_ms"],
        generator_cpu_s=_child_cpu_s() - cpu_before,
        extra={
            k: data[k]
            for k in (
                "rate",
                "scheduled",
                "never_sent",
                "within_2s",
                "max_schedule_lag_ms",
                "max_connections",
                "connections_opened",
            )
        },
    )
