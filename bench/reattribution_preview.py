"""`python -m bench.reattribution_preview`: how long a re-attribution preview of
100,000 won events takes (target: under 10 s).

A fresh PostgreSQL edge database is filled with `--events` won events as the edge logs
them (AmoCRM webhook lead events with a dozen custom fields), one per lead, a mix of
sources: half match a targetologist, a share are referral links, a share unknown, and
some are drifted spellings ("Kenesary-FB", "KENESARY FB") the shipped rules miss. A real
router runs as its own process (`python -m router_svc`, rules seeded from the shipped
file). The preview is asked through the edge's own app (POST
/api/admin/reattribution/preview, in this process) with candidate rules that add the
drifted spellings, `--rounds` times; it prints events, changed and the duration.
Exits 1 when the best round misses the target.
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import falcon.testing
import sqlalchemy as sa

from amoroute.devrun import grpc_serving
from edge.__main__ import upgrade_database
from edge.amocrm_form import FormLimits
from edge.app import create_app
from edge.log_store import NewLog, WebhookLogStore
from edge.settings import Settings
from edge.webhook import intake
from router_svc.rules import DEFAULT_RULES_PATH
from tests.support.databases import create_database, drop_database
from tests.support.forms import encode, won_deal_body
from tests.support.stack import free_port

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 10.0
TOKEN = "bench-admin-token-0123456789abcdef"
SHIPPED = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
CANDIDATE = SHIPPED.replace(
    '["kenesary_*", "kenesary"]', '["kenesary_*", "kenesary", "kenesary-fb", "kenesary fb"]'
)
# (utm_source, routing decision under the shipped rules), cycled through the leads:
# half traffic, a fifth referral, the rest unknown of which most are drifts.
SOURCES = [
    ("kenesary_fb", "traffic"),
    ("aidana_ig", "traffic"),
    ("kenesary_tt", "traffic"),
    ("aidana_fb", "traffic"),
    ("kenesary", "traffic"),
    ("ref_ABC123", "referral"),
    ("ref_PARTNER7", "referral"),
    ("Kenesary-FB", "unknown"),
    ("KENESARY FB", "unknown"),
    ("google", "unknown"),
]
PLACEHOLDER_LEAD, PLACEHOLDER_PRICE = 987654321, 8765432
# Fields an AmoCRM lead carries besides the UTM marks.
EXTRA_FIELDS = [
    ("utm_medium", "UTM_MEDIUM", "cpc"),
    ("utm_content", "UTM_CONTENT", "banner_3"),
    ("utm_term", "UTM_TERM", "курсы английского"),
    ("Телефон", "", "+7 701 123 45 67"),
    ("Город", "", "Алматы"),
    ("Курс", "", "English Intermediate"),
    ("Ссылка на страницу", "", "https://onai.kz/english?utm_source=x&utm_medium=cpc"),
    ("Менеджер", "", "Айгерим"),
]


def lead_body(lead_id: int, utm_source: str, price: int) -> bytes:
    fields = won_deal_body(lead_id, utm_source, "spring_sale", price=price)
    prefix = "leads[status][0][custom_fields]"
    for k, (name, code, value) in enumerate(EXTRA_FIELDS, start=2):
        fields[f"{prefix}[{k}][id]"] = str(1402100 + k)
        fields[f"{prefix}[{k}][name]"] = name
        if code:
            fields[f"{prefix}[{k}][code]"] = code
        fields[f"{prefix}[{k}][values][0][value]"] = value
    return encode(fields)


def fill(store: WebhookLogStore, events: int) -> None:
    """`events` won events, one per lead, logged as routed: each source's event as the
    edge's intake logs it, copied for each lead with its id, name and price."""
    form = "application/x-www-form-urlencoded"
    templates = []
    for source, decision in SOURCES:
        [row], _ = intake(lead_body(PLACEHOLDER_LEAD, source, PLACEHOLDER_PRICE), form,
                          FormLimits())
        templates.append((row, json.dumps(row.deal_data, ensure_ascii=False), decision))
    batch: list[NewLog] = []
    for n in range(events):
        row, text, decision = templates[n % len(templates)]
        lead_id, price = 7_000_000 + n, 10_000 + 100 * (n % 97)
        data = json.loads(text.replace(str(PLACEHOLDER_LEAD), str(lead_id))
                          .replace(str(PLACEHOLDER_PRICE), str(price)))
        batch.append(dataclasses.replace(
            row, deal_data=data, lead_id=lead_id, deal_name=f"Сделка #{lead_id}",
            processing_status="success", routing_decision=decision))
        if len(batch) == 5_000:
            store.insert(batch)
            batch = []
    if batch:
        store.insert(batch)


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used: on a shared machine the
    duration depends on the others' load, these do not."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_router(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "ROUTER_PORT": str(port),
        "ROUTER_DATABASE_URL": f"sqlite:///{tmp / 'router.sqlite3'}",
        "LOG_LEVEL": "WARNING",
        "METRICS_PORT": str(free_port()),
    }
    subprocess.run([sys.executable, "-m", "router_svc", "migrate"], env=env, check=True, cwd=REPO)
    proc = subprocess.Popen([sys.executable, "-m", "router_svc"], env=env, cwd=REPO)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not grpc_serving(address):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the router did not start")
        time.sleep(0.2)
    return proc, address


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        url = create_database("edge", tmp)
        router, address = start_router(tmp)
        try:
            upgrade_database(Settings(edge_database_url=url))
            engine = sa.create_engine(url)
            started = time.monotonic()
            fill(WebhookLogStore(engine), args.events)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("VACUUM ANALYZE webhook_logs"))
            engine.dispose()
            print(f"filled {args.events:,} events in {time.monotonic() - started:.1f} s")
            client = falcon.testing.TestClient(create_app(Settings(
                edge_database_url=url, admin_token=TOKEN, router_addr=address)))
            body = {"yaml": CANDIDATE, "received_from": "2000-01-01T00:00:00Z",
                    "received_to": "2100-01-01T00:00:00Z"}
            best = float("inf")
            for n in range(args.rounds):
                started, edge_cpu = time.monotonic(), time.process_time()
                router_cpu = cpu_s(router.pid)
                reply = client.simulate_post(
                    "/api/admin/reattribution/preview", json=body,
                    headers={"Authorization": f"Bearer {TOKEN}"})
                elapsed = time.monotonic() - started
                edge_cpu = time.process_time() - edge_cpu
                router_cpu = cpu_s(router.pid) - router_cpu
                assert reply.status_code == 200, reply.text
                answer = reply.json
                best = min(best, elapsed)
                print(f"round {n + 1}: events {answer['events']:,}  changed "
                      f"{answer['changed']:,}  duration {elapsed:.2f} s "
                      f"(duration_ms {answer['duration_ms']:,}); CPU s: edge {edge_cpu:.2f}, "
                      f"router {router_cpu:.2f}")
            print(f"machine load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
            print(f"best {best:.2f} s, target < {TARGET_S:.0f} s: "
                  f"{'ok' if best < TARGET_S else 'MISSED'}")
            return 0 if best < TARGET_S else 1
        finally:
            router.terminate()
            router.wait(20)
            drop_database(url)


if __name__ == "__main__":
    sys.exit(main())
