"""`make run`: migrate every database, then run every process in the foreground
until Ctrl-C / SIGTERM, which stops them all. Tests start the same stack."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

SERVICES_WITH_DATABASE = ("referral_svc", "traffic_svc", "notifier_svc", "edge")


@dataclass
class Stack:
    """The amoroute processes, started with one environment."""

    env: dict[str, str]
    # /metrics port of each gRPC service and the worker (one machine runs them all).
    metrics_ports: dict[str, int] = field(
        default_factory=lambda: {
            "router_svc": 9091,
            "referral_svc": 9092,
            "traffic_svc": 9093,
            "notifier_svc": 9094,
            "edge.worker": 9095,
        }
    )
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    stdout: int | None = None

    def commands(self) -> dict[str, list[str]]:
        py = sys.executable
        gunicorn = [py, "-m", "gunicorn", "-c", "edge/gunicorn_conf.py", "edge.app:create_app()"]
        return {
            "referral_svc": [py, "-m", "referral_svc"],
            "traffic_svc": [py, "-m", "traffic_svc"],
            "notifier_svc": [py, "-m", "notifier_svc"],
            "router_svc": [py, "-m", "router_svc"],
            "edge": gunicorn,
            "edge.worker": [py, "-m", "edge.worker"],
        }

    def migrate(self) -> None:
        for name in SERVICES_WITH_DATABASE:
            subprocess.run([sys.executable, "-m", name, "migrate"], env=self.env, check=True)

    def start(self, stdout: int | None = None) -> None:
        self.stdout = stdout
        for name in self.commands():
            self.start_process(name)

    def start_process(self, name: str) -> None:
        """Start (or start again, as a new pod would) one of the processes."""
        env = dict(self.env)
        if name in self.metrics_ports:
            env["METRICS_PORT"] = str(self.metrics_ports[name])
        self.procs[name] = subprocess.Popen(
            self.commands()[name],
            env=env,
            stdout=self.stdout,
            stderr=subprocess.STDOUT if self.stdout else None,
        )

    def exited(self) -> dict[str, int]:
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def stop(self, grace: float = 15.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def warnings(env: Mapping[str, str]) -> list[str]:
    out = []
    if len(env.get("ADMIN_TOKEN", "")) < 16:
        out.append(
            "ADMIN_TOKEN is unset or shorter than 16 characters: the admin API refuses everyone"
        )
    if len(env.get("WEBHOOK_SECRET", "")) < 16:
        out.append("WEBHOOK_SECRET is unset or short: anyone who finds the URL can post webhooks")
    if not env.get("TELEGRAM_BOT_TOKEN"):
        out.append("TELEGRAM_BOT_TOKEN is unset: notifications are stored, not sent")
    if not env.get("GRPC_AUTH_TOKENS"):
        out.append(
            "GRPC_AUTH_TOKENS is unset: gRPC caller authentication is off; the servers listen on "
            f"{env.get('BIND_HOST', '127.0.0.1')} only"
        )
    return out


def main() -> int:
    env = dict(os.environ)
    os.makedirs("var", exist_ok=True)
    stack = Stack(env)
    stack.migrate()
    stop_requested = False

    def request_stop(*_: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    stack.start()
    port = env.get("EDGE_PORT", "8080")
    webhook = f"http://localhost:{port}/webhook/amocrm/"
    if env.get("WEBHOOK_SECRET"):
        webhook += "<WEBHOOK_SECRET>"
    print(
        "\namoroute is running (Ctrl-C stops everything):\n"
        f"  webhook   {webhook}\n"
        f"  admin UI  http://localhost:{port}/admin/\n"
        f"  health    http://localhost:{port}/readyz\n"
        f"  gRPC      router localhost:{env.get('ROUTER_PORT', '50051')}, "
        f"referral :{env.get('REFERRAL_PORT', '50052')}, "
        f"traffic :{env.get('TRAFFIC_PORT', '50053')}, "
        f"notifier :{env.get('NOTIFIER_PORT', '50054')}\n"
        f"  metrics   http://localhost:{port}/metrics, services and worker on "
        + ", ".join(f":{p}" for p in stack.metrics_ports.values())
        + "\n",
        flush=True,
    )
    for line in warnings(env):
        print(f"  warning: {line}", flush=True)
    while not stop_requested and not stack.exited():
        time.sleep(0.2)
    crashed = stack.exited()
    stack.stop()
    if crashed and not stop_requested:
        print(f"stopped because a process exited: {crashed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
