"""The whole amoroute stack as real processes on free ports, for end-to-end tests."""

import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx

from amoroute.callers import CALLERS, OPERATOR, CallerCredentials
from amoroute.devrun import Stack, grpc_serving

REPO = Path(__file__).resolve().parents[2]

# The stack runs as deployed, with caller authentication on, so the suite exercises
# the authenticated path; tests call the services as the operator does.
TOKENS = {caller: f"{caller}-{secrets.token_hex(16)}" for caller in CALLERS}
# The chats the shipped routing rules name (TELEGRAM_ALLOWED_CHAT_IDS).
RULES_CHATS = "-1001234567890"


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: every socket stays bound until all are chosen, so the
    kernel cannot hand one port out twice (it may reuse a port as soon as it is closed)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class RunningStack:
    stack: Stack
    env: dict[str, str]
    log_path: Path
    log_file: BinaryIO

    @property
    def edge_url(self) -> str:
        return f"http://127.0.0.1:{self.env['EDGE_PORT']}"

    def addr(self, name: str) -> str:
        return f"127.0.0.1:{self.env[name.upper() + '_PORT']}"

    @property
    def operator(self) -> CallerCredentials:
        """What a test shows the services: the operator's token."""
        return CallerCredentials(token=TOKENS[OPERATOR])

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


GRPC_SERVICES = ("router", "referral", "traffic", "notifier")


def start_stack(databases: dict[str, str], log_dir: Path, **extra_env: str) -> RunningStack:
    """Migrate and start every process, each on its database in `databases` (by
    service: edge, router, referral, traffic, notifier); wait until the edge is ready
    and every gRPC service serves (the edge's /readyz looks at the router only, and a
    test may call a service straight away). A router without a database of its own
    gets a SQLite file in `log_dir`, never the working tree's var/."""
    databases = {"router": f"sqlite:///{log_dir / 'router.sqlite3'}", **databases}
    names = ("EDGE", "ROUTER", "REFERRAL", "TRAFFIC", "NOTIFIER")
    metrics_names = list(Stack({}).metrics_ports)
    # Every port of the stack chosen at once, so no two of its processes get the same one.
    chosen = free_ports(len(names) + len(metrics_names))
    ports = dict(zip(names, chosen, strict=False))
    metrics_ports = dict(zip(metrics_names, chosen[len(names) :], strict=True))
    env = {
        **os.environ,
        **{f"{n}_PORT": str(p) for n, p in ports.items()},
        **{f"{n}_ADDR": f"127.0.0.1:{p}" for n, p in ports.items() if n != "EDGE"},
        **{f"{n.upper()}_DATABASE_URL": url for n, url in databases.items()},
        "EDGE_WORKERS": "2",
        "LOG_LEVEL": "INFO",
        "GRPC_AUTH_TOKENS": ",".join(f"{caller}:{token}" for caller, token in TOKENS.items()),
        "TELEGRAM_ALLOWED_CHAT_IDS": RULES_CHATS,
        **extra_env,
    }
    stack = Stack(env)
    stack.metrics_ports = metrics_ports
    stack.migrate()
    log_path = log_dir / "stack.log"
    # Open for the stack's whole life: a process started again writes here too.
    log_file = open(log_path, "wb")  # noqa: SIM115
    stack.start(stdout=log_file.fileno())
    running = RunningStack(stack, env, log_path, log_file)
    deadline = time.monotonic() + 90
    while True:
        if stack.exited():
            stack.stop()
            raise RuntimeError(f"stack died: {stack.exited()}\n{running.output()[-4000:]}")
        try:
            if httpx.get(f"{running.edge_url}/readyz", timeout=1).status_code == 200 and all(
                grpc_serving(running.addr(name), timeout_s=1) for name in GRPC_SERVICES
            ):
                return running
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stack.stop()
            raise RuntimeError(f"stack not ready in 90 s\n{running.output()[-4000:]}")
        time.sleep(0.2)

