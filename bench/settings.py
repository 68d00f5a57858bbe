"""Every environment variable the bench reads, in one place."""

import os
from dataclasses import dataclass

QUICK_PHASE_S = 10.0
FULL_PHASE_S = 60.0


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r}: expected a number") from None
    if value <= 0:
        raise SystemExit(f"{name}={raw!r}: must be above 0")
    return value


def _profile_mode(raw: str) -> str:
    raw = raw.strip().lower()
    if raw in ("", "0"):
        return ""
    if raw in ("1", "cpu"):
        return "cpu"
    if raw == "wall":
        return "wall"
    raise SystemExit(f"BENCH_PROFILE={raw!r}: expected cpu or wall")


def _profile_phase(raw: str) -> str:
    raw = raw.strip().lower() or "single"
    if raw not in ("single", "ten"):
        raise SystemExit(f"BENCH_PROFILE_PHASE={raw!r}: expected single or ten")
    return raw


@dataclass(frozen=True)
class BenchSettings:
    """How long and how hard each phase runs.

    BENCH_QUICK=1 shortens every phase to ~10 s for trying things out; BENCH_DURATION_S
    sets the phase length either way (default 60 s, the figure to quote)."""

    quick: bool
    duration_s: float  # of each load phase (baseline, single-lead, 10-lead, fixed rate)
    rate: float  # offered load of the open-loop latency phase, webhooks per second
    # A second open-loop phase runs at this share of the measured single-lead capacity.
    low_rate_fraction: float
    connections: int  # wrk connections of the closed-loop phases
    wrk_threads: int
    openloop_connections: int  # most connections the open-loop generator opens
    request_timeout_s: float  # a load generator gives up on an answer after this
    drain_timeout_s: float  # bound of the wait for every sent lead to be credited
    edge_workers: str  # gunicorn workers and threads, the same for baseline and edge
    edge_threads: str
    keep_logs: bool  # keep bench/results/<run>/ (stack log, wrk output) after a good run
    profile: str  # "", "cpu" or "wall": py-spy profiles during one phase
    profile_phase: str  # which: "single" (default) or "ten"

    @classmethod
    def from_env(cls) -> "BenchSettings":
        quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
        return cls(
            quick=quick,
            duration_s=_number("BENCH_DURATION_S", QUICK_PHASE_S if quick else FULL_PHASE_S),
            rate=_number("BENCH_RATE", 500),
            low_rate_fraction=_number("BENCH_LOW_RATE_FRACTION", 0.7),
            connections=int(_number("BENCH_CONNECTIONS", 32)),
            wrk_threads=int(_number("BENCH_WRK_THREADS", 1)),
            openloop_connections=int(_number("BENCH_OPENLOOP_CONNECTIONS", 256)),
            request_timeout_s=_number("BENCH_REQUEST_TIMEOUT_S", 30),
            drain_timeout_s=_number("BENCH_DRAIN_TIMEOUT_S", 60 if quick else 120),
            edge_workers=os.environ.get("EDGE_WORKERS", "2"),
            edge_threads=os.environ.get("EDGE_THREADS", "16"),
            keep_logs=os.environ.get("BENCH_KEEP_LOGS", "") not in ("", "0"),
            profile=_profile_mode(os.environ.get("BENCH_PROFILE", "")),
            profile_phase=_profile_phase(os.environ.get("BENCH_PROFILE_PHASE", "single")),
        )
