"""Two of everything on one PostgreSQL, a burst, a replica of each killed in the middle:
`python -m bench.scale_out`.

Two edges (gunicorn, one worker each), two retry workers, two routers and two of each
service share the five databases of one PostgreSQL server; each gRPC client balances
over both replicas of what it calls (`ipv4:a,b` targets, round robin as on Kubernetes'
headless Services). A stand-in AmoCRM answers the workers' reconciliation every
`RECONCILE_INTERVAL_S`; a stand-in Telegram records the announcements. Webhooks of one
won lead each (the rules send them to Kenesary: a traffic sale and a notification) go to
either edge; when an edge does not answer 200 the webhook is sent again to the other, as
AmoCRM retries and a load balancer moves on. Half-way through, one replica of every
process is killed (SIGKILL) and started again three seconds later, as a node lost and a
pod rescheduled.

It then checks: every lead credited exactly once, each event logged as settled, every
sale announced exactly once, and one reconciliation pass per interval whatever the
number of workers. Prints the figures; exits 1 when a check fails.

Needs PostgreSQL at TEST_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/postgres);
the databases are dropped at the end. BENCH_SCALE_LEADS (default 2000) sets the burst.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa

from amoroute.devrun import Stack, grpc_serving
from tests.support.databases import create_database, drop_database
from tests.support.fake_amocrm import FakeAmoCrm
from tests.support.fake_telegram import FakeTelegram, Limits
from tests.support.forms import encode, won_deal_body
from tests.support.stack import RULES_CHATS, TOKENS, free_ports

REPO = Path(__file__).resolve().parents[1]
BOT_TOKEN = "123456:bench-scale-out-token"
AMOCRM_TOKEN = "bench-scale-out-amocrm-token"
SERVICES = ("edge", "router", "referral", "traffic", "notifier")
GRPC = ("router", "referral", "traffic", "notifier")
REPLICAS = 2
RECONCILE_INTERVAL_S = 5
FIRST_LEAD = 880_000_001
# Announcements are paced per chat; the bench lifts the group limit (in the notifier and
# the stand-in alike) so that a burst's announcements finish in a minute, not in an hour.
GROUP_PER_MIN = 600
_LEAD = re.compile(r"/leads/detail/(\d+)\"")


@dataclass
class Replica:
    kind: str  # edge, worker, router, referral, traffic, notifier
    number: int
    command: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    kills: int = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command, env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # a kill takes gunicorn's workers with it
            )

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@dataclass
class Cluster:
    replicas: list[Replica]
    edge_urls: list[str]
    grpc_addresses: list[str]
    databases: dict[str, str]
    logs: Path

    def ready(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if all(_ready(url) for url in self.edge_urls) and all(
                grpc_serving(a, timeout_s=1) for a in self.grpc_addresses
            ):
                return
            dead = [f"{r.kind}-{r.number}" for r in self.replicas
                    if r.process is not None and r.process.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = dead or "timeout"
                raise SystemExit(f"the cluster did not start ({why}); see {self.logs}")
            time.sleep(0.3)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def cluster(databases: dict[str, str], telegram: FakeTelegram, amocrm: FakeAmoCrm,
            logs: Path) -> Iterator[Cluster]:
    """Two replicas of every process on `databases`, migrated, started and ready."""
    ports = free_ports(len(SERVICES) * REPLICAS)
    port = {(kind, n): ports[i * REPLICAS + n] for i, kind in enumerate(SERVICES)
            for n in range(REPLICAS)}
    base = {
        **os.environ,
        **{f"{k.upper()}_DATABASE_URL": url for k, url in databases.items()},
        **{f"{k.upper()}_ADDR": "ipv4:" + ",".join(f"127.0.0.1:{port[(k, n)]}"
                                                  for n in range(REPLICAS)) for k in GRPC},
        "GRPC_AUTH_TOKENS": ",".join(f"{caller}:{token}" for caller, token in TOKENS.items()),
        "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_API_URL": telegram.url,
        "TELEGRAM_ALLOWED_CHAT_IDS": RULES_CHATS,
        "NOTIFIER_GROUP_CHAT_PER_MIN": str(GROUP_PER_MIN),
        "AMOCRM_DOMAIN": "onaiagencykz",
        "AMOCRM_API_URL": amocrm.url,
        "AMOCRM_ACCESS_TOKEN": AMOCRM_TOKEN,
        "RECONCILE_INTERVAL_S": str(RECONCILE_INTERVAL_S),
        "WORKER_POLL_S": "0.5",
        "EDGE_WORKERS": "1",
        "METRICS_PORT": "0",
        "LOG_LEVEL": "INFO",
    }
    Stack(base).migrate()
    commands = Stack(base).commands()
    replicas = []
    for n in range(REPLICAS):
        for kind, command in (("edge", commands["edge"]), ("worker", commands["edge.worker"]),
                              *((k, commands[f"{k}_svc"]) for k in GRPC)):
            env = dict(base)
            if kind != "worker":
                env[f"{kind.upper()}_PORT"] = str(port[(kind, n)])
            replicas.append(Replica(kind, n, command, env, logs / f"{kind}-{n}.log"))
    running = Cluster(
        replicas,
        [f"http://127.0.0.1:{port[('edge', n)]}" for n in range(REPLICAS)],
        [f"127.0.0.1:{port[(k, n)]}" for k in GRPC for n in range(REPLICAS)],
        databases,
        logs,
    )
    try:
        for replica in replicas:
            replica.start()
        running.ready()
        yield running
    finally:
        for replica in replicas:
            replica.stop()


@dataclass
class Sender:
    """Posts webhooks to the edges in turn; a webhook not answered 200 goes to the next."""

    edges: list[str]
    resent: int = 0
    answered_at: dict[int, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, number: int, lead_id: int) -> None:
        body = encode(won_deal_body(lead_id, "kenesary_fb", price=100_000 + lead_id % 1000))
        attempt = 0
        while True:
            url = self.edges[(number + attempt) % len(self.edges)]
            try:
                answer = httpx.post(
                    f"{url}/webhook/amocrm", content=body, timeout=5,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
                if answer.status_code == 200:
                    with self._lock:
                        self.answered_at[lead_id] = time.monotonic()
                    return
            except httpx.HTTPError:
                pass
            attempt += 1
            with self._lock:
                self.resent += 1
            time.sleep(0.2)


def burst(running: Cluster, leads: list[int]) -> tuple[Sender, float]:
    """Send every lead, killing one replica of each process half-way; returns the
    sender and the seconds the burst took."""
    sender = Sender(running.edge_urls)
    victims = [r for r in running.replicas if r.number == 0]
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(sender.send, n, lead) for n, lead in enumerate(leads)]
        while len(sender.answered_at) < len(leads) // 2:
            time.sleep(0.05)
        for victim in victims:
            victim.kill()
        print(f"  killed {', '.join(f'{v.kind}-0' for v in victims)} after "
              f"{len(sender.answered_at)} webhooks answered", flush=True)
        time.sleep(3)
        for victim in victims:
            victim.start()
        for future in futures:
            future.result()
    return sender, time.monotonic() - started


def credited(databases: dict[str, str]) -> Counter[int]:
    engine = sa.create_engine(databases["traffic"])
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT lead_id, count(*) FROM all_sales_tracking GROUP BY lead_id"
            )).all()
    finally:
        engine.dispose()
    return Counter({lead: n for lead, n in rows})


def log_states(databases: dict[str, str]) -> Counter[str]:
    engine = sa.create_engine(databases["edge"])
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT processing_status, count(*) FROM webhook_logs "
                "WHERE lead_id >= :first GROUP BY processing_status"
            ), {"first": FIRST_LEAD}).all()
    finally:
        engine.dispose()
    return Counter({status: n for status, n in rows})


def announced(telegram: FakeTelegram) -> Counter[int]:
    return Counter(
        int(lead) for message in telegram.delivered
        for lead in _LEAD.findall(message.body.get("text", ""))
    )


def reconciliation_passes(logs: Path) -> list[float]:
    """When each reconciliation pass of any worker started, from the workers' logs."""
    ends = []
    for path in sorted(logs.glob("worker-*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if '"reconciliation pass"' in line:
                try:
                    ends.append(float(json.loads(line)["report"]["started_at"]))
                except (ValueError, KeyError, TypeError):
                    continue
    return sorted(ends)


def run(count: int) -> bool:
    leads = list(range(FIRST_LEAD, FIRST_LEAD + count))
    scratch = Path(tempfile.mkdtemp(prefix="scale-out-"))
    databases = {name: create_database(f"scale_{name}", scratch) for name in SERVICES}
    try:
        with ExitStack() as stack:
            telegram = stack.enter_context(FakeTelegram(
                token=BOT_TOKEN, limits=Limits(group_messages=GROUP_PER_MIN)))
            amocrm = stack.enter_context(FakeAmoCrm(token=AMOCRM_TOKEN))
            running = stack.enter_context(cluster(databases, telegram, amocrm, scratch))
            print(f"scale out: {REPLICAS} of every process on one PostgreSQL, {count} leads; "
                  f"logs in {scratch}", flush=True)
            watch_from = time.time()
            sender, took = burst(running, leads)
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                sales, states = credited(databases), log_states(databases)
                told = announced(telegram)
                if (set(leads) <= set(sales) and set(leads) <= set(told)
                        and not states.get("pending") and not states.get("error")):
                    break
                time.sleep(1)
            time.sleep(RECONCILE_INTERVAL_S * 2)  # anything done twice would show now
            watched_s = time.time() - watch_from
            sales, states, told = credited(databases), log_states(databases), announced(telegram)
            passes = [t for t in reconciliation_passes(scratch) if t >= watch_from]
        return report(leads, sender, took, sales, states, told, passes, watched_s)
    finally:
        for url in databases.values():
            drop_database(url)


def report(leads: list[int], sender: Sender, took: float, sales: Counter[int],
           states: Counter[str], told: Counter[int], passes: list[float],
           watched_s: float) -> bool:
    wanted = set(leads)
    lost = sorted(wanted - set(sales))
    doubled = sorted(lead for lead, n in sales.items() if n > 1)
    not_told = sorted(wanted - set(told))
    told_twice = sorted(lead for lead, n in told.items() if n > 1)
    gaps = [b - a for a, b in zip(passes, passes[1:], strict=False)]
    most_passes = int(watched_s // RECONCILE_INTERVAL_S) + 1
    checks = {
        "every lead credited, none lost": not lost,
        "no lead credited twice": not doubled,
        "every event settled (no pending, no error)": not states.get("pending")
        and not states.get("error"),
        "every sale announced": not not_told,
        "no sale announced twice": not told_twice,
        f"one reconciliation pass per {RECONCILE_INTERVAL_S} s interval, whatever the workers":
            bool(passes) and len(passes) <= most_passes
            and min(gaps, default=RECONCILE_INTERVAL_S) >= RECONCILE_INTERVAL_S * 0.9,
    }
    rows = [
        ("webhooks answered", f"{len(sender.answered_at)} in {took:.1f} s "
                              f"({len(sender.answered_at) / took:.0f}/s), {sender.resent} resent"),
        ("credited / lost / twice", f"{len(wanted & set(sales))} / {len(lost)} / {len(doubled)}"),
        ("log states", ", ".join(f"{k} {v}" for k, v in sorted(states.items()))),
        ("announced / missing / twice",
         f"{len(wanted & set(told))} / {len(not_told)} / {len(told_twice)}"),
        ("reconciliation passes", f"{len(passes)} in {watched_s:.0f} s (at most {most_passes}), "
                                  f"shortest gap {min(gaps, default=0):.1f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'MISS'} {name}")
    return all(checks.values())


def main() -> None:
    sys.exit(0 if run(int(os.environ.get("BENCH_SCALE_LEADS", "2000"))) else 1)


if __name__ == "__main__":
    main()
