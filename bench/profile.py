"""Optional (BENCH_PROFILE=cpu or wall): py-spy profiles of the stack during the
single-lead phase, and a text summary of them. py-spy is not a project dependency:
`.venv/bin/pip install py-spy` to use this.

  cpu   samples only the thread holding the GIL (--gil): the Python work of each
        process, which is what to make cheaper on a CPU-bound machine (py-spy's
        plain "active thread" filter counts threads that wait on locks and queues)
  wall  samples idle threads too (--idle), so waits on PostgreSQL or on a downstream
        gRPC call show up as the frame that waits; only samples taken inside a request
        handler (HANDLERS) are summarised, so the shares are of request time

Each process is summarised four ways: by step (a database round trip, COMMIT,
pool_pre_ping, opening a connection, a gRPC wait, or Python work), by library (the
frame nearest the leaf that belongs to a known library or to amoroute), by the
deepest amoroute function on the stack (with its line), and by leaf function."""

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

PROJECT = ("edge", "router_svc", "referral_svc", "traffic_svc", "notifier_svc", "amoroute")
LIBRARIES = (
    "sqlalchemy", "psycopg", "grpc", "google", "falcon", "gunicorn", "httpx", "httpcore",
    "pydantic", "yaml", "logging", "json", "concurrent", "selectors", "threading",
)
# The frames that mark a sample as "inside a request", by the process's profile name.
HANDLERS = {
    "edge_worker": ("_receive", "_route"),
    "router_svc": ("RouteDeal", "BatchRouteDeals", "_traffic_then_notify", "_referral"),
    "traffic_svc": ("RecordSale", "BatchRecordSales"),
    "notifier_svc": ("Notify", "BatchNotify"),
    "edge.worker": ("run_once",),
}
# Shared plumbing that wraps every call: the frame that called through it says more.
PLUMBING = ("amoroute/requestid.py", "amoroute/metrics.py", "amoroute/grpc_server.py",
            "amoroute/logging_setup.py")
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    venv_bin = Path(sys.executable).parent / "py-spy"
    return str(venv_bin) if venv_bin.exists() else shutil.which("py-spy")


def start(
    pids: dict[str, int], seconds: int, out_dir: Path, mode: str
) -> list[subprocess.Popen[bytes]]:
    """One py-spy recorder per process; none when py-spy is not installed."""
    binary = py_spy()
    if binary is None:
        print("BENCH_PROFILE: py-spy not found (.venv/bin/pip install py-spy); not profiling")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    # Sampling every idle thread is costly: fewer samples a second in wall mode.
    which = ["--idle", "--rate", "25"] if mode == "wall" else ["--gil", "--rate", "100"]
    return [
        subprocess.Popen(
            [binary, "record", *which, "--format", "raw",
             "--duration", str(seconds), "--pid", str(pid),
             "-o", str(out_dir / f"{_file_name(label)}.txt")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for label, pid in pids.items()
    ]


def _file_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)


@dataclass(frozen=True)
class Frame:
    function: str
    file: str
    line: str = ""

    @property
    def top(self) -> str:
        """'sqlalchemy/engine/base.py' -> 'sqlalchemy'; 'threading.py' -> 'threading'."""
        return self.file.split("/", 1)[0].removesuffix(".py")

    def __str__(self) -> str:
        return f"{self.function} ({self.file})"

    def at_line(self) -> str:
        return f"{self.function} ({self.file}:{self.line})" if self.line else str(self)


def _frames(stack: str) -> list[Frame]:
    frames = []
    for raw in stack.split(";"):
        match = _FRAME.match(raw)
        frames.append(
            Frame(match["function"], match["file"], match["line"] or "") if match
            else Frame(raw, "?")
        )
    return frames


@dataclass(frozen=True)
class Summary:
    samples: int
    by_step: Counter[str]
    by_library: Counter[str]
    by_project_function: Counter[str]
    by_leaf: Counter[str]


_STEPS = (
    ("pool_pre_ping (SELECT 1 on checkout)", re.compile(r"_do_ping")),
    ("opening a PostgreSQL connection", re.compile(r"_connect_gen|Connection\.connect ")),
    ("COMMIT", re.compile(r"commit", re.IGNORECASE)),
    ("ROLLBACK", re.compile(r"rollback", re.IGNORECASE)),
    ("SQL statement", re.compile(r"\(psycopg/")),
    ("gRPC call or waiting on another thread",
     re.compile(r"\(grpc/|Condition\.wait|Future\.result")),
)


def _step(frames: list[Frame]) -> str:
    """What the deepest amoroute frame of a sample was doing: a database step, a
    wait, or Python work (its own or a library's)."""
    ours = [k for k, f in enumerate(frames) if f.top in PROJECT]
    if not ours:
        return "server and thread-pool plumbing (no amoroute frame)"
    callee = ";".join(str(f) for f in frames[ours[-1]:])
    return next((name for name, pattern in _STEPS if pattern.search(callee)), "Python work")


def _inside(frames: list[Frame], handlers: tuple[str, ...]) -> list[Frame] | None:
    """The part of the stack from the outermost handler frame down; None outside one."""
    for k, frame in enumerate(frames):
        if frame.function.rsplit(".", 1)[-1] in handlers:
            return frames[k:]
    return None


def summarise(raw: Path, handlers: tuple[str, ...] = ()) -> Summary:
    """Shares of the samples; with `handlers`, of those taken inside one of them."""
    by_step: Counter[str] = Counter()
    by_library: Counter[str] = Counter()
    by_project: Counter[str] = Counter()
    by_leaf: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = _frames(stack)
        if handlers:
            inside = _inside(frames, handlers)
            if inside is None:
                continue
            frames = inside
        total += n
        by_step[_step(frames)] += n
        library = next(
            (("amoroute code" if f.top in PROJECT else f.top) for f in reversed(frames)
             if f.top in PROJECT or f.top in LIBRARIES),
            "other",
        )
        by_library[library] += n
        project = [f for f in frames if f.top in PROJECT and f.file not in PLUMBING]
        by_project[project[-1].at_line() if project else "(no amoroute frame)"] += n
        by_leaf[str(frames[-1])] += n
    return Summary(total, by_step, by_library, by_project, by_leaf)


def _share(counter: Counter[str], total: int, top: int) -> list[str]:
    return [f"    {n / total:6.1%}  {name}" for name, n in counter.most_common(top)]


def report(out_dir: Path, mode: str, top: int = 8) -> str:
    """Text summary of every profile in `out_dir`, recorded in `mode` (cpu or wall)."""
    lines = []
    for raw in sorted(out_dir.glob("*.txt")):
        handlers: tuple[str, ...] = ()
        if mode == "wall":
            handlers = next((h for name, h in HANDLERS.items() if raw.stem.startswith(name)), ())
        s = summarise(raw, handlers)
        if not s.samples:
            continue
        where = f" inside {' / '.join(handlers)}" if handlers else ""
        lines.append(f"{raw.stem}: {s.samples} samples{where}")
        lines.append("  by step:")
        lines += _share(s.by_step, s.samples, top)
        lines.append("  by library:")
        lines += _share(s.by_library, s.samples, top)
        lines.append("  by deepest amoroute function (line):")
        lines += _share(s.by_project_function, s.samples, top)
        lines.append("  by leaf function:")
        lines += _share(s.by_leaf, s.samples, top)
    return "\n".join(lines)


if __name__ == "__main__":
    # python -m bench.profile bench/results/<run>/profile [cpu|wall]
    print(report(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "cpu"))
