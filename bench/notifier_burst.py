"""A campaign burst through two notifier replicas: `python -m bench.notifier_burst`.

Two `python -m notifier_svc` processes share one fresh PostgreSQL database; the
stand-in Telegram (tests/support/fake_telegram.py) enforces Telegram's limits
(20 messages in any 60 s per group, one a second per private chat, 30 a second
overall) and answers 429 with retry_after beyond them. 300 sales for one group
chat arrive evenly over 30 s, alternating between the replicas as the router's
calls would. The target (bench/README.md):
every sale announced within 90 s of the last Notify, at most 20 messages in any
60 s to the chat, no 429 received, no sale announced twice or missing. Prints
the figures; exits 1 when a target is missed.

Needs PostgreSQL at TEST_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/postgres);
the database is dropped at the end.
"""

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from amoroute.channels import channel
from amoroute.devrun import grpc_serving
from amoroute.v1 import deal_pb2, notifier_pb2, notifier_pb2_grpc
from notifier_svc import server
from notifier_svc.settings import Settings
from tests.support.databases import create_database, drop_database
from tests.support.fake_telegram import FakeTelegram, Limits, RecordedRequest
from tests.support.stack import free_port

REPO = Path(__file__).resolve().parents[1]
TOKEN = "123456:bench-burst-token"
CHAT = "-1001234567890"
SALES = 300
BURST_S = 30.0
WITHIN_S = 90.0
GROUP = Limits()  # Telegram's: 20 messages in any 60 s to a group
_LEAD = re.compile(r"/leads/detail/(\d+)\"")


@contextmanager
def _replicas(database: str, telegram: FakeTelegram, count: int, logs: Path) -> Iterator[list[str]]:
    """`count` notifier processes on `database`; yields their addresses."""
    with ExitStack() as stack:
        addresses, processes = [], []
        for n in range(count):
            port = free_port()
            env = {
                **os.environ,
                "NOTIFIER_DATABASE_URL": database,
                "NOTIFIER_PORT": str(port),
                "METRICS_PORT": "0",
                "TELEGRAM_BOT_TOKEN": TOKEN,
                "TELEGRAM_API_URL": telegram.url,
                "TELEGRAM_DEFAULT_CHAT_ID": CHAT,
                "AMOCRM_DOMAIN": "onaiagencykz",
                "LOG_LEVEL": "WARNING",
            }
            log = stack.enter_context((logs / f"notifier-{n}.log").open("wb"))
            process = subprocess.Popen(
                [sys.executable, "-m", "notifier_svc"], env=env, cwd=REPO, stdout=log, stderr=log
            )
            processes.append(process)
            stack.callback(_stop, process)
            addresses.append(f"127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while not all(grpc_serving(a) for a in addresses):
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise SystemExit(f"a notifier replica did not start; see {logs}")
            time.sleep(0.2)
        yield addresses


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


def _sale(lead_id: int) -> notifier_pb2.NotifyRequest:
    return notifier_pb2.NotifyRequest(
        lead_id=lead_id,
        account_id=32145678,
        account_subdomain="onaiagencykz",
        deal_name=f"Курс «Таргетолог PRO» #{lead_id}",
        amount=150000,
        targetologist="Kenesary",
        utm=deal_pb2.UtmMarks(source="kenesary_fb", campaign="tp_june"),
        chat_id=CHAT,
    )


def _most_in_window(arrivals: list[float], window_s: float) -> int:
    return max((sum(1 for b in arrivals if a - window_s < b <= a) for a in arrivals), default=0)


def run(sales: int, burst_s: float) -> bool:
    leads = range(10_000_001, 10_000_001 + sales)
    database = create_database("notifier_burst", Path(tempfile.gettempdir()))
    try:
        server.upgrade_database(Settings(notifier_database_url=database))
        with (
            tempfile.TemporaryDirectory(prefix="notifier-burst-") as logs,
            FakeTelegram(token=TOKEN, limits=GROUP) as telegram,
            _replicas(database, telegram, 2, Path(logs)) as addresses,
            ExitStack() as channels,
        ):
            stubs = [
                notifier_pb2_grpc.NotifierServiceStub(channels.enter_context(channel(a)))
                for a in addresses
            ]
            notified_at: dict[int, float] = {}
            start = time.monotonic()
            for n, lead in enumerate(leads):
                time.sleep(max(0.0, start + n * burst_s / sales - time.monotonic()))
                stubs[n % len(stubs)].Notify(_sale(lead))
                notified_at[lead] = time.monotonic()
            last_notify = time.monotonic()
            deadline = last_notify + WITHIN_S + 30  # wait a little past the target
            while time.monotonic() < deadline:
                texts = [m.body["text"] for m in telegram.delivered]
                if set(leads) <= {int(x) for text in texts for x in _LEAD.findall(text)}:
                    break
                time.sleep(0.5)
            time.sleep(2.0)  # anything sent twice would show now
            calls = [r for r in telegram.requests if r.body.get("chat_id") == CHAT]
        return _report(leads, notified_at, start, last_notify, calls)
    finally:
        drop_database(database)


def _report(
    leads: range,
    notified_at: dict[int, float],
    start: float,
    last_notify: float,
    calls: list[RecordedRequest],
) -> bool:
    delivered = [c for c in calls if c.status == 200]
    first_seen: dict[int, float] = {}
    times: Counter[int] = Counter()
    for message in delivered:
        for lead in map(int, _LEAD.findall(message.body["text"])):
            times[lead] += 1
            first_seen.setdefault(lead, message.at)
    missing = [lead for lead in leads if lead not in times]
    twice = [lead for lead, n in times.items() if n > 1]
    rate_limited = sum(1 for c in calls if c.status == 429)
    most = _most_in_window([c.at for c in delivered], GROUP.group_window_s)
    done_after = (max(first_seen.values()) - last_notify) if first_seen else float("inf")
    waits = sorted(first_seen[lead] - notified_at[lead] for lead in first_seen)
    per_message = [len(_LEAD.findall(m.body["text"])) for m in delivered]
    longest = max((len(m.body["text"].encode("utf-16-le")) // 2 for m in delivered), default=0)
    checks = {
        f"all announced within {WITHIN_S:.0f} s of the last Notify": (
            not missing and done_after <= WITHIN_S
        ),
        f"at most {GROUP.group_messages} messages in any {GROUP.group_window_s:.0f} s": (
            most <= GROUP.group_messages
        ),
        "no 429 received": rate_limited == 0,
        "no sale announced twice": not twice,
    }
    rows = [
        ("sales notified", f"{len(leads)} over {last_notify - start:.1f} s, 2 replicas"),
        ("messages sent to the chat", f"{len(delivered)}"),
        ("sales per message", f"min {min(per_message, default=0)}, "
         f"median {statistics.median(per_message) if per_message else 0:g}, "
         f"max {max(per_message, default=0)}"),
        ("longest message", f"{longest} UTF-16 units"),
        ("all announced after the last Notify", f"{done_after:.1f} s"),
        ("wait per sale (Notify -> Telegram)", f"p50 {_pct(waits, 50):.1f} s, "
         f"p95 {_pct(waits, 95):.1f} s, max {max(waits, default=0):.1f} s"),
        ("most messages in any 60 s", f"{most}"),
        ("429 answers", f"{rate_limited}"),
        ("missing / announced twice", f"{len(missing)} / {len(twice)}"),
    ]
    width = max(len(name) for name, _ in rows)
    print("notifier burst (stand-in Telegram at Telegram's limits, PostgreSQL)")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'MISS'} {name}")
    return all(checks.values())


def _pct(values: list[float], p: int) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def main() -> None:
    sys.exit(0 if run(SALES, BURST_S) else 1)


if __name__ == "__main__":
    main()
