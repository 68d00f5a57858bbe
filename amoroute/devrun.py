"""`make run`: migrate every database, then run every process in the foreground
until Ctrl-C / SIGTERM, which stops them all. Tests start the same stack."""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cryptography.fernet import Fernet

# The development AMOROUTE_SECRET_KEY of `make run`, beside the SQLite databases it encrypts for.
DEV_SECRET_KEY_FILE = "var/amoroute-secret-key"
SERVICES_WITH_DATABASE = ("router_svc", "referral_svc", "traffic_svc", "notifier_svc", "edge")


class MigrationFailed(Exception):
    """A service's database could not be upgraded; the message holds its output."""


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
        # The config as a module, so make run works from any folder (as the image does).
        gunicorn = [
            py,
            "-m",
            "gunicorn",
            "-c",
            "python:edge.gunicorn_conf",
            "edge.app:create_app()",
        ]
        return {
            "referral_svc": [py, "-m", "referral_svc"],
            "traffic_svc": [py, "-m", "traffic_svc"],
            "notifier_svc": [py, "-m", "notifier_svc"],
            "router_svc": [py, "-m", "router_svc"],
            "edge": gunicorn,
            "edge.worker": [py, "-m", "edge.worker"],
        }

    def migrate(self) -> None:
        """Upgrade every database; one line each, the whole output only when one fails."""
        for name in SERVICES_WITH_DATABASE:
            done = subprocess.run(
                [sys.executable, "-m", name, "migrate"],
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            if done.returncode != 0:
                raise MigrationFailed(f"{name}: migration failed\n{done.stdout}")
            print(f"{name}: database up to date", flush=True)

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


# Each port make run uses, the setting that moves it, and its default.
PORT_SETTINGS = {
    "EDGE_PORT": 8080,
    "ROUTER_PORT": 50051,
    "REFERRAL_PORT": 50052,
    "TRAFFIC_PORT": 50053,
    "NOTIFIER_PORT": 50054,
}
# make run's /metrics ports: METRICS_BASE_PORT and the next four.
METRICS_BASE_PORT = 9091
GRPC_SERVICES = {
    "router_svc": ("ROUTER", "amoroute.v1.RouterService"),
    "referral_svc": ("REFERRAL", "amoroute.v1.ReferralService"),
    "traffic_svc": ("TRAFFIC", "amoroute.v1.TrafficService"),
    "notifier_svc": ("NOTIFIER", "amoroute.v1.NotifierService"),
}


def _int_setting(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "") or str(default)
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise SystemExit(f"{name}={value!r} is not a port number (1-65535)")
    return int(value)


def development_environment(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, int]]:
    """The environment of a make-run stack: ports from their settings, each service's
    address derived from its port unless set, and a sign-in token for this run when none
    is set. Returns (environment, the setting of every port it will listen on)."""
    out = dict(env)
    ports = {name: _int_setting(env, name, default) for name, default in PORT_SETTINGS.items()}
    for name, port in ports.items():
        out[name] = str(port)
    for prefix, _ in GRPC_SERVICES.values():
        out.setdefault(f"{prefix}_ADDR", f"127.0.0.1:{ports[f'{prefix}_PORT']}")
    base = _int_setting(env, "METRICS_BASE_PORT", METRICS_BASE_PORT)
    for offset, name in enumerate(
        ("router_svc", "referral_svc", "traffic_svc", "notifier_svc", "edge.worker")
    ):
        ports[f"METRICS_BASE_PORT+{offset} ({name} /metrics)"] = base + offset
    if not out.get("ADMIN_TOKEN"):
        out["ADMIN_TOKEN"] = secrets.token_urlsafe(32)
        out["AMOROUTE_GENERATED_ADMIN_TOKEN"] = "1"
    return out, ports


def development_secret_key(env: dict[str, str], path: str = DEV_SECRET_KEY_FILE) -> None:
    """Set AMOROUTE_SECRET_KEY, when unset, to this checkout's development key (made once
    and kept in `path`): the AmoCRM tokens stored in var/edge.sqlite3 are encrypted with it,
    so a key made per run would leave them unreadable at the next start."""
    if env.get("AMOROUTE_SECRET_KEY"):
        return
    try:
        with open(path, encoding="ascii") as kept:
            key = kept.read().strip()
    except FileNotFoundError:
        key = Fernet.generate_key().decode()
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as made:
            made.write(key + "\n")
    env["AMOROUTE_SECRET_KEY"] = key


def busy_ports(ports: Mapping[str, int]) -> list[str]:
    """One line for each port something else already listens on, naming its setting."""
    busy = []
    for setting, port in ports.items():
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                name = setting.split(" ")[0].split("+")[0]
                busy.append(
                    f"port {port} is in use; move it with {name}=<another port>"
                    + (f" ({setting})" if setting != name else "")
                )
    return busy


def grpc_serving(address: str, timeout_s: float = 0.5) -> bool:
    """The gRPC service at `address` answers its health check SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout_s
            )
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def _answers(port: int | str, path: str) -> bool:
    """Whether http://127.0.0.1:{port}{path} answers 200."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def not_serving(stack: Stack) -> list[str]:
    """The processes that do not answer their health check yet (the worker, which
    serves nothing else, by its /metrics)."""
    waiting = [] if _answers(stack.env["EDGE_PORT"], "/readyz") else ["edge"]
    waiting += [
        name
        for name, (prefix, _) in GRPC_SERVICES.items()
        if not grpc_serving(stack.env[f"{prefix}_ADDR"])
    ]
    if not _answers(stack.metrics_ports["edge.worker"], "/metrics"):
        waiting.append("edge.worker")
    return waiting


def wait_until_serving(
    stack: Stack, stopping: Callable[[], bool], patience_s: float = 60
) -> bool:
    """True once the edge is ready, every gRPC service answers its health check and the
    worker its /metrics; False when a process exits or a stop is asked for. A slow
    start is said, not cut."""
    said_at = time.monotonic() + patience_s
    while not stack.exited() and not stopping():
        waiting = not_serving(stack)
        if not waiting:
            return True
        if time.monotonic() > said_at:
            print(f"still starting: {', '.join(waiting)}", flush=True)
            said_at = time.monotonic() + patience_s
        time.sleep(0.2)
    return False


def warnings(env: Mapping[str, str]) -> list[str]:
    out = []
    if not env.get("ADMIN_TOKEN"):
        out.append("ADMIN_TOKEN is unset: the admin API and UI refuse everyone")
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


def banner(env: Mapping[str, str], stack: Stack) -> str:
    port = env["EDGE_PORT"]
    webhook = f"http://127.0.0.1:{port}/webhook/amocrm"
    if env.get("WEBHOOK_SECRET"):
        webhook += "/<WEBHOOK_SECRET>"
    if env.get("AMOROUTE_GENERATED_ADMIN_TOKEN"):
        admin = (
            f"http://127.0.0.1:{port}/admin/#token={env['ADMIN_TOKEN']}\n"
            "            (signs you in; the token was made for this run only: set ADMIN_TOKEN"
            " to keep one)"
        )
    else:
        admin = f"http://127.0.0.1:{port}/admin/  (sign in with ADMIN_TOKEN)"
    services = ", ".join(
        f"{name.removesuffix('_svc')} {env[f'{prefix}_ADDR']}"
        for name, (prefix, _) in GRPC_SERVICES.items()
    )
    return (
        "\namoroute is running (Ctrl-C stops everything):\n"
        f"  webhook   {webhook}\n"
        f"  admin UI  {admin}\n"
        f"  health    http://127.0.0.1:{port}/readyz\n"
        f"  gRPC      {services}\n"
        f"  metrics   http://127.0.0.1:{port}/metrics, services and worker on "
        + ", ".join(f":{p}" for p in stack.metrics_ports.values())
        + "\n"
    )


def main() -> int:
    env, ports = development_environment(os.environ)
    busy = busy_ports(ports)
    if busy:
        print("amoroute cannot start:", *(f"  {line}" for line in busy), sep="\n", flush=True)
        return 1
    os.makedirs("var", exist_ok=True)
    development_secret_key(env)
    base = _int_setting(env, "METRICS_BASE_PORT", METRICS_BASE_PORT)
    stack = Stack(env)
    stack.metrics_ports = {name: base + i for i, name in enumerate(stack.metrics_ports)}
    try:
        stack.migrate()
    except MigrationFailed as failed:
        print(failed, file=sys.stderr, flush=True)
        return 1
    stop_requested = False

    def request_stop(*_: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    stack.start()
    print("starting every process…", flush=True)
    if wait_until_serving(stack, lambda: stop_requested):
        print(banner(env, stack), flush=True)
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
