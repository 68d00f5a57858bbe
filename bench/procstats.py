"""Peak memory (VmHWM) and CPU time of processes, read from /proc.

A named process is followed with its children (gunicorn's workers), so every
worker is measured, including one that is replaced mid-run."""

import os
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
MACHINE = "machine, all processes"
OTHERS = "other processes (not the bench's)"


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after its last ")".
    return raw[raw.rindex(")") + 2 :].split()


def parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def cpu_s(pid: int) -> float | None:
    """User plus system CPU seconds the process has used."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _TICKS if fields else None


def tree_cpu_s(root: int) -> float | None:
    """CPU seconds of a process and its direct children, those already ended included
    (their time is added to the parent's cutime/cstime when it reaps them): the
    whole of a PostgreSQL server, whose backends come and go with connections."""
    fields = _stat_fields(root)
    if fields is None:
        return None
    total = sum(int(v) for v in fields[11:15]) / _TICKS
    return total + sum(cpu_s(kid) or 0.0 for kid in children_of(root))


def machine_busy_s() -> float:
    """CPU seconds every core has spent busy since boot (not idle, not waiting on I/O)."""
    return machine_cpu_s()[0]


def machine_cpu_s() -> tuple[float, float]:
    """(busy, steal) CPU seconds of every core since boot; busy counts steal too
    (time the hypervisor gave to another machine while this one had work)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / _TICKS, steal / _TICKS


def peak_rss_kib(pid: int) -> int | None:
    """VmHWM: the most resident memory the process has had."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def children_of(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and parent_of(int(entry)) == pid:
            kids.append(int(entry))
    return sorted(kids)


@dataclass(frozen=True)
class CpuSnapshot:
    by_pid: dict[int, tuple[str, float]]  # pid -> (label, CPU seconds so far)
    trees: dict[str, float]  # label -> CPU seconds so far of a process tree
    machine_s: float


@dataclass
class ProcessWatch:
    """Peak RSS and CPU of named processes and their children, sampled on demand."""

    named: dict[str, int]  # label -> pid of the process started
    child_label: dict[str, str] = field(default_factory=dict)  # label -> children's label
    labels: dict[int, str] = field(default_factory=dict)  # pid -> label
    peak_kib: dict[str, int] = field(default_factory=dict)

    def _discover(self) -> None:
        for label, pid in self.named.items():
            self.labels.setdefault(pid, label)
            child = self.child_label.get(label)
            if child is None:
                continue
            for kid in children_of(pid):
                if kid not in self.labels:
                    n = sum(v.startswith(child) for v in self.labels.values()) + 1
                    self.labels[kid] = f"{child} {n}"

    def sample(self) -> None:
        """Record the peak RSS of every process alive now."""
        self._discover()
        for pid, label in self.labels.items():
            peak = peak_rss_kib(pid)
            if peak is not None:
                self.peak_kib[label] = max(self.peak_kib.get(label, 0), peak)

    def cpu(
        self, extra_pids: dict[int, str] | None = None, trees: dict[str, int] | None = None
    ) -> CpuSnapshot:
        """CPU seconds so far of every watched process, of `extra_pids`, and of the
        process trees `trees` (label -> root pid)."""
        self.sample()
        by_pid: dict[int, tuple[str, float]] = {}
        for pid, label in {**self.labels, **(extra_pids or {})}.items():
            used = cpu_s(pid)
            if used is not None:
                by_pid[pid] = (label, used)
        tree_s = {label: tree_cpu_s(root) for label, root in (trees or {}).items()}
        return CpuSnapshot(
            by_pid, {k: v for k, v in tree_s.items() if v is not None}, machine_busy_s()
        )


def cpu_delta(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """CPU seconds per label between two snapshots, plus the whole machine's and
    what processes outside the bench used. A process that started in between
    counts from zero; one that ended in between is missed."""
    totals: dict[str, float] = {}
    for pid, (label, used) in after.by_pid.items():
        start = before.by_pid.get(pid, (label, 0.0))[1]
        totals[label] = totals.get(label, 0.0) + max(0.0, used - start)
    for label, used in after.trees.items():
        totals[label] = max(0.0, used - before.trees.get(label, used))
    machine = after.machine_s - before.machine_s
    ours = sum(totals.values())
    out = {label: round(v, 2) for label, v in totals.items()}
    out[MACHINE] = round(machine, 2)
    out[OTHERS] = round(max(0.0, machine - ours), 2)
    return out
