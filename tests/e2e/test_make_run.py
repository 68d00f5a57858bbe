"""`make run` as a newcomer meets it: `python -m amoroute.devrun` in an empty folder, on
SQLite, with nothing set. It says which port is busy, prints the banner only once every
process serves, signs the admin in with a link made for the run, and two stacks with
different port settings run side by side."""

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

PORT_NAMES = ("EDGE_PORT", "ROUTER_PORT", "REFERRAL_PORT", "TRAFFIC_PORT", "NOTIFIER_PORT")
# One make run's ports: the five services' and, after them, the five /metrics ports
# (METRICS_BASE_PORT and the next four).
PORTS_PER_RUN = len(PORT_NAMES) + 5


def _ephemeral_floor() -> int:
    """The lowest port the kernel hands to outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_run_of_ports(count: int, avoid: range = range(0)) -> int:
    """The first of `count` consecutive free ports below the ephemeral range (outside
    `avoid`). There no outgoing connection of a process that is starting can take one
    as its source port between this check and the bind of the process it is for."""
    floor = _ephemeral_floor()
    for _ in range(200):
        first = random.randrange(10000, floor - count)
        ports = range(first, first + count)
        if ports.start < avoid.stop and avoid.start < ports.stop:
            continue
        sockets = []
        try:
            for port in ports:
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no run of free ports")


def port_settings(avoid: range = range(0)) -> dict[str, str]:
    """Every port of one make run (PORTS_PER_RUN), free and outside `avoid`."""
    first = free_run_of_ports(PORTS_PER_RUN, avoid)
    env = {name: str(first + i) for i, name in enumerate(PORT_NAMES)}
    env["METRICS_BASE_PORT"] = str(first + len(PORT_NAMES))
    return env


def ports_of(settings: dict[str, str]) -> range:
    first = int(settings[PORT_NAMES[0]])
    return range(first, first + PORTS_PER_RUN)


@dataclass
class DevRun:
    proc: subprocess.Popen
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None or any(text in line for line in self.lines), (
                "make run exited:\n" + "\n".join(self.lines[-40:]))
            assert time.monotonic() < deadline, "\n".join(self.lines[-40:])
            time.sleep(0.1)

    @property
    def edge(self) -> str:
        return f"http://127.0.0.1:{self.env['EDGE_PORT']}"

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def start_devrun(folder: Path, **settings: str) -> DevRun:
    env = {k: v for k, v in os.environ.items()
           if not k.endswith(("_DATABASE_URL", "_ADDR", "_PORT")) and k != "ADMIN_TOKEN"}
    env.update(settings)
    proc = subprocess.Popen([sys.executable, "-m", "amoroute.devrun"], cwd=folder, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run = DevRun(proc, env)
    threading.Thread(target=run.read, daemon=True).start()
    return run


@pytest.fixture
def devruns(tmp_path: Path) -> Iterator[list[DevRun]]:
    runs: list[DevRun] = []
    yield runs
    for run in runs:
        if run.proc.poll() is None:
            run.stop()


def test_two_stacks_run_side_by_side_and_each_signs_its_admin_in(tmp_path: Path, devruns) -> None:  # type: ignore[no-untyped-def]
    # Both stacks' ports are chosen before either starts, and apart.
    first = port_settings()
    second = port_settings(avoid=ports_of(first))
    for name, settings in (("first", first), ("second", second)):
        (tmp_path / name).mkdir()
        devruns.append(start_devrun(tmp_path / name, **settings))
    for run in devruns:
        run.wait_for("amoroute is running")
        # The banner comes only once every process serves.
        try:
            ready = httpx.get(f"{run.edge}/readyz", timeout=5)
        except httpx.ConnectError as exc:
            raise AssertionError("\n".join(["no edge after the banner:", *run.lines[-60:]])) from exc
        assert ready.status_code == 200
        link = next(m for line in run.lines
                    if (m := re.search(r"(http://\S+/admin/)#token=(\S+)", line)))
        assert link[1] == f"{run.edge}/admin/"
        assert "for this run only" in "\n".join(run.lines)
        auth = {"Authorization": f"Bearer {link[2]}"}
        assert httpx.get(f"{run.edge}/api/admin/webhook-stats", headers=auth,
                         timeout=5).status_code == 200
        assert httpx.get(f"{run.edge}/api/admin/webhook-stats", timeout=5).status_code == 401
        # One line per migrated database, no migration tool chatter.
        before_banner = run.lines[:next(i for i, line in enumerate(run.lines)
                                        if "amoroute is running" in line)]
        assert sum("database up to date" in line for line in before_banner) == 5
        assert not any("alembic" in line.lower() for line in before_banner)
        # Every process, gunicorn included, logs in one format: a JSON object per line.
        started = before_banner.index("starting every process…")
        for line in before_banner[started + 1:]:
            if line.strip() and not line.startswith("still starting: "):
                assert isinstance(json.loads(line), dict), line
        # Each stack's services are where its own port settings say.
        for name in ("ROUTER", "REFERRAL", "TRAFFIC", "NOTIFIER"):
            assert f"127.0.0.1:{run.env[name + '_PORT']}" in "\n".join(run.lines)
    for run in devruns:
        assert run.stop() == 0


def test_a_busy_port_is_named_with_the_setting_that_moves_it(tmp_path: Path, devruns) -> None:  # type: ignore[no-untyped-def]
    settings = port_settings()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(settings["EDGE_PORT"])))
        taken.listen()
        run = start_devrun(tmp_path, **settings)
        devruns.append(run)
        assert run.proc.wait(60) == 1
    time.sleep(0.2)
    output = "\n".join(run.lines)
    assert f"port {settings['EDGE_PORT']} is in use; move it with EDGE_PORT=" in output
    assert "amoroute is running" not in output
    assert not (tmp_path / "var").exists()  # nothing was started or migrated
