"""Re-attribution applied through real services: the edge app in-process on a migrated
database (PostgreSQL or SQLite), webhooks routed through a real RouterService (rules in its
own database) and the referral, traffic and notifier services (Telegram a local stand-in);
the worker's job runner re-routes what the new rules change."""

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import falcon.testing
import grpc
import pytest
import sqlalchemy as sa

from amoroute.channels import channel
from amoroute.v1 import (
    notifier_pb2,
    notifier_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
    traffic_pb2,
    traffic_pb2_grpc,
)
from edge.dispatch import Dispatcher
from edge.job_store import JobStore
from edge.jobs import JobRunner
from edge.log_store import WebhookLogStore, webhook_logs
from edge.worker import Worker
from router_svc.rules import DEFAULT_RULES_PATH
from tests.admin.helpers import AUTH, FORM, Seeder, admin_client, migrated_edge_database
from tests.support.fake_telegram import FakeTelegram
from tests.support.forms import encode, won_deal_body
from tests.support.services import Services, start_services
from tests.support.waiting import eventually

APPLY = "/api/admin/reattribution"
PREVIEW = "/api/admin/reattribution/preview"
SHIPPED = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
# Kenesary gets the drifted "Kenesary-FB" and Aidana's "aidana_fb", and loses the bare
# "kenesary"; Aidana keeps only "aidana_ig*".
CANDIDATE = SHIPPED.replace(
    '["kenesary_*", "kenesary"]', '["kenesary_*", "kenesary-fb", "aidana_fb"]'
).replace('["aidana_*"]', '["aidana_ig*"]')
# Then "google" is Aidana's too.
GOOGLE_TO_AIDANA = CANDIDATE.replace('["aidana_ig*"]', '["aidana_ig*", "google"]')
TELEGRAM_TOKEN = "123456789:AAH-reattribution-token"
LEADS = {
    "unknown_to_kenesary": (93001, "Kenesary-FB", 250_000),
    "aidana_to_kenesary": (93002, "aidana_fb", 100_000),
    "kenesary_to_unknown": (93003, "kenesary", 70_000),
    "stays_unknown": (93004, "google", 30_000),
    "stays_referral": (93005, "ref_ABC123", 40_000),
    "stays_kenesary": (93006, "kenesary_ig", 10_000),
}


@dataclass
class Rig:
    client: falcon.testing.TestClient
    seed: Seeder
    logs: WebhookLogStore
    router_channel: grpc.Channel
    router: router_pb2_grpc.RouterServiceStub
    traffic: traffic_pb2_grpc.TrafficServiceStub
    notifier: notifier_pb2_grpc.NotifierServiceStub
    telegram: FakeTelegram
    since: datetime
    log_ids: dict[str, int]

    def webhook(self, lead_id: int, source: str, price: int) -> int:
        body = encode(won_deal_body(lead_id, source, price=price))
        reply = self.client.simulate_post("/webhook/amocrm", body=body, headers=FORM)
        assert reply.status_code == 200, reply.text
        [log_id] = reply.json["log_ids"]
        assert eventually(lambda: self.seed.store.find(log_id)["processing_status"]
                          == "success"), f"{log_id} not routed"
        return log_id

    def body(self, **fields: object) -> dict:
        return {"yaml": CANDIDATE, "received_from": self.since.isoformat(),
                "received_to": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
                **fields}

    def apply(self, **fields: object) -> falcon.testing.Result:
        return self.client.simulate_post(APPLY, json=self.body(**fields), headers=AUTH)

    def preview(self, **fields: object) -> dict:
        reply = self.client.simulate_post(PREVIEW, json=self.body(**fields), headers=AUTH)
        assert reply.status_code == 200, reply.text
        return reply.json

    def runner(self, dispatcher: Dispatcher | None = None, rate: float = 10_000,
               lease: timedelta | None = None) -> JobRunner:
        return JobRunner(JobStore(self.logs.engine), self.logs,
                         dispatcher or Dispatcher(self.router_channel, self.logs), 5.0, rate,
                         lease=lease)

    def get(self, path: str) -> dict:
        reply = self.client.simulate_get(path, headers=AUTH)
        assert reply.status_code == 200, reply.text
        return reply.json

    def sales(self, lead_id: int) -> list[traffic_pb2.Sale]:
        return list(self.traffic.ListSales(traffic_pb2.ListSalesRequest(lead_id=lead_id)).sales)

    def reattribution_logs(self) -> list[dict]:
        c = webhook_logs.c
        with self.logs.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                sa.select(webhook_logs).where(c.source == "reattribution").order_by(c.id))]

    def notifications(self, lead_id: int) -> list[notifier_pb2.Notification]:
        request = notifier_pb2.ListNotificationsRequest(lead_id=lead_id)
        return list(self.notifier.ListNotifications(request).notifications)


class Killed(BaseException):
    """The worker's process ends here (SIGKILL): nothing after it runs."""


class KilledBeforeRouting(Dispatcher):
    """A worker killed after a chunk committed, before its router call."""

    def dispatch(self, jobs: list, timeout_s: float) -> list:  # type: ignore[type-arg]
        raise Killed()


def run_to_end(runner: JobRunner) -> None:
    """Run the runner's jobs to their end, without the pause between chunks."""
    for _ in range(10_000):
        runner.next_chunk_at = float("-inf")
        runner.run_once()
        if runner.current is None:
            return
    raise AssertionError("the job did not finish")


def _stack(make_database, telegram: FakeTelegram, **router: str) -> tuple[Services, str]:  # type: ignore[no-untyped-def]
    services = start_services(
        make_database,
        telegram_bot_token=TELEGRAM_TOKEN,
        telegram_api_url=telegram.url,
        telegram_default_chat_id="-1001000000001",
        telegram_allowed_chat_ids="-1001234567890",
        notifier_group_chat_per_min="600",
    )
    return services, services.start_router(router_leg_timeout_s=5.0, **router)


@pytest.fixture
def rig(make_database) -> Iterator[Rig]:  # type: ignore[no-untyped-def]
    with FakeTelegram(token=TELEGRAM_TOKEN) as telegram:
        services, router_addr = _stack(make_database, telegram)
        database = migrated_edge_database(make_database)
        client = admin_client(database, router_addr=router_addr,
                              referral_addr=services.addr("referral"),
                              traffic_addr=services.addr("traffic"), router_deadline_s=5.0)
        channels = [channel(router_addr), channel(services.addr("traffic")),
                    channel(services.addr("notifier"))]
        seed = Seeder(database)
        logs = WebhookLogStore(sa.create_engine(database))
        rig = Rig(client, seed, logs, channels[0], router_pb2_grpc.RouterServiceStub(channels[0]),
                  traffic_pb2_grpc.TrafficServiceStub(channels[1]),
                  notifier_pb2_grpc.NotifierServiceStub(channels[2]), telegram,
                  datetime.now(UTC) - timedelta(minutes=1), {})
        for name, (lead_id, source, price) in LEADS.items():
            rig.log_ids[name] = rig.webhook(lead_id, source, price)
        yield rig
        seed.close()
        logs.engine.dispose()
        for ch in channels:
            ch.close()
        services.stop()


def _announced(rig: Rig, lead_id: int) -> bool:
    """Whether a message delivered to Telegram links the lead."""
    return any(f"/leads/detail/{lead_id}" in m.body.get("text", "")
               for m in rig.telegram.delivered)


def _dashboard(rig: Rig) -> dict[str, tuple[int, int]]:
    """The dashboards' figures per credited party: (count, revenue)."""
    traffic = rig.get("/api/admin/sales/traffic")["items"]
    referral = rig.get("/api/admin/sales/referral")["items"]
    return {
        **{f"traffic:{i['targetologist']}": (i["sales"], i["revenue"]) for i in traffic
           if i["sales"]},
        **{f"referral:{i['referral_code']}": (i["conversions"], i["amount_total"])
           for i in referral if i["conversions"]},
    }


def _after(preview: dict) -> dict[str, tuple[int, int]]:
    return {t["party"]: (t["after"]["count"], t["after"]["revenue"]) for t in preview["totals"]
            if t["party"] != "unknown" and t["after"]["count"]}


def test_applied_rules_credit_reattribute_and_withdraw_and_the_dashboards_match_the_preview(
    rig: Rig,
) -> None:
    preview = rig.preview()
    assert (preview["rules_version"], preview["changed"]) == (1, 3)
    # The first routing announced the traffic sales (alone or in a digest).
    assert eventually(lambda: all(_announced(rig, lead) for lead in (93002, 93003, 93006)))

    reply = rig.apply(expected_version=1, comment="Kenesary-FB is Kenesary's")
    assert reply.status_code == 202, reply.text
    job = reply.json["job"]
    assert reply.headers["location"] == f"/api/admin/reattribution/{job['id']}"
    assert job["links"]["job"] == f"/api/admin/jobs/{job['id']}"
    assert (job["state"], job["total"], job["done"]) == ("queued", 3, 0)
    assert (job["from_version"], job["to_version"], job["created_by"]) == (1, 2, "admin")
    assert job["announce"] is False
    stored = reply.json["rules_version"]
    assert (stored["version"], stored["author"], stored["comment"]) == (
        2, "admin", "Kenesary-FB is Kenesary's")
    assert rig.router.GetRules(router_pb2.GetRulesRequest()).current.yaml == CANDIDATE

    run_to_end(rig.runner(rate=2))  # chunks of two leads
    done = rig.get(f"/api/admin/reattribution/{job['id']}")
    assert (done["state"], done["total"], done["done"], done["failed"]) == ("done", 3, 3, 0)
    assert done["changes"] == {"credited": 1, "reattributed": 1, "withdrawn": 1}
    generic = rig.get(f"/api/admin/jobs/{job['id']}")
    assert (generic["kind"], generic["state"], generic["done"]) == ("reattribution", "done", 3)

    # Unknown -> Kenesary: credited.
    [credited] = rig.sales(93001)
    assert (credited.targetologist, credited.amount, credited.HasField("reversed_at")) == (
        "Kenesary", 250_000, False)
    # Aidana -> Kenesary: Aidana's sale reversed "re-attributed" and kept; Kenesary's new.
    sales = {s.targetologist: s for s in rig.sales(93002)}
    assert set(sales) == {"Aidana", "Kenesary"}
    assert sales["Aidana"].HasField("reversed_at")
    assert sales["Aidana"].reversal_reason.startswith("re-attributed")
    assert not sales["Kenesary"].HasField("reversed_at")
    # Kenesary -> unknown: withdrawn.
    [withdrawn] = rig.sales(93003)
    assert withdrawn.HasField("reversed_at")
    assert withdrawn.reversal_reason.startswith("re-attributed")
    # Unchanged leads are not touched.
    assert [s.targetologist for s in rig.sales(93006)] == ["Kenesary"]

    # Each changed lead has one new attempt saying what, when and why.
    logs = rig.reattribution_logs()
    assert Counter(row["replay_of"] for row in logs) == Counter(
        rig.log_ids[n] for n in ("unknown_to_kenesary", "aidana_to_kenesary",
                                 "kenesary_to_unknown"))
    by_lead = {row["lead_id"]: row for row in logs}
    assert by_lead[93001]["routing_decision"] == "traffic"
    assert by_lead[93001]["legs"] == {"referral": "duplicate", "traffic": "recorded"}
    assert by_lead[93002]["legs"]["traffic"] == "reattributed"
    assert by_lead[93003]["routing_decision"] == "unknown"
    assert by_lead[93003]["legs"]["traffic"] == "withdrawn"
    why = by_lead[93002]["deal_data"]["reattribution"]
    assert why == {"job_id": job["id"], "by": "admin", "from_version": 1, "to_version": 2,
                   "announce": False, "change": "reattributed"}
    assert all(row["processing_status"] == "success" for row in logs)
    history = rig.get("/api/admin/webhook-logs?lead_id=93002")["items"]
    assert history[0]["source"] == "reattribution"

    # Not announced: no notifier leg, no notification, no message.
    assert all("notifier" not in row["legs"] for row in logs)
    assert rig.notifications(93001) == []
    assert not _announced(rig, 93001)

    # The dashboards now show what the preview said "after".
    assert _dashboard(rig) == _after(preview)

    # The same change again: nothing to do, and no new version.
    again = rig.apply(expected_version=2)
    assert again.status_code == 200, again.text
    assert again.json["job"] is None
    assert again.json["message"].startswith("nothing to re-attribute")
    assert again.json["rules_version"] == 2
    assert rig.router.GetRules(router_pb2.GetRulesRequest()).current.version == 2
    assert len(rig.reattribution_logs()) == 3

    # A stale version: 409 naming both, nothing stored.
    stale = rig.apply(yaml=GOOGLE_TO_AIDANA, expected_version=1)
    assert stale.status_code == 409, stale.text
    assert "version 2" in stale.json["description"] and "version 1" in stale.json["description"]
    assert stale.json["current_version"] == 2
    assert rig.router.GetRules(router_pb2.GetRulesRequest()).current.version == 2

    # Announced on request: "google" goes to Aidana and the sale is announced.
    announced = rig.apply(yaml=GOOGLE_TO_AIDANA, expected_version=2, announce=True)
    assert announced.status_code == 202, announced.text
    assert announced.json["job"]["announce"] is True
    run_to_end(rig.runner())
    [new_sale] = rig.sales(93004)
    assert new_sale.targetologist == "Aidana"
    assert len(rig.notifications(93004)) == 1
    assert eventually(lambda: _announced(rig, 93004))


def test_a_job_interrupted_by_a_worker_restart_finishes_and_reroutes_each_lead_once(
    rig: Rig,
) -> None:
    reply = rig.apply(expected_version=1)
    assert reply.status_code == 202, reply.text
    job_id = reply.json["job"]["id"]
    # The first worker takes one lead, logs it and is killed before it routes it: the
    # lead's new event stays pending, the job running under a lease that runs out.
    first = rig.runner(KilledBeforeRouting(rig.router_channel, rig.logs), rate=1,
                       lease=timedelta(milliseconds=1))
    with pytest.raises(Killed):
        first.run_once()
    stopped = rig.get(f"/api/admin/reattribution/{job_id}")
    assert stopped["state"] == "running"
    assert 0 < stopped["done"] < 3, stopped
    pending = [row["id"] for row in rig.reattribution_logs()
               if row["processing_status"] == "pending"]
    assert pending
    # Its lease ran out: another worker takes the job over and finishes it, and the
    # worker's retries route the pending re-attribution, as a re-attribution.
    second = rig.runner()
    run_to_end(second)
    for log_id in pending:
        rig.seed.set(log_id, retry_at=datetime.now(UTC) - timedelta(seconds=1))
    Worker(rig.logs, Dispatcher(rig.router_channel, rig.logs), 100, 5.0).run_once()
    done = rig.get(f"/api/admin/reattribution/{job_id}")
    assert (done["state"], done["total"], done["done"], done["failed"]) == ("done", 3, 3, 0)
    logs = rig.reattribution_logs()
    assert Counter(row["lead_id"] for row in logs) == Counter([93001, 93002, 93003])
    assert all(row["processing_status"] == "success" for row in logs), logs
    sales = {s.targetologist: s for s in rig.sales(93002)}
    assert sales["Aidana"].reversal_reason.startswith("re-attributed")
    assert not sales["Kenesary"].HasField("reversed_at")
    assert [s.HasField("reversed_at") for s in rig.sales(93003)] == [True]
    assert [s.targetologist for s in rig.sales(93001)] == ["Kenesary"]
    # A second run of the finished job's change finds nothing.
    assert rig.apply(expected_version=2).json["job"] is None


@pytest.mark.parametrize(("fields", "field"), [
    ({"expected_version": None}, "expected_version"),
    ({"expected_version": "1"}, "expected_version"),
    ({"expected_version": 1, "announce": "yes"}, "announce"),
    ({"expected_version": 1, "comment": 5}, "comment"),
    ({"expected_version": 1, "dry_run": True}, "dry_run"),
    ({"expected_version": 1, "yaml": SHIPPED.replace('["aidana_*"]', "[42]")},
     "yaml: traffic.targetologists[1].patterns[0]"),
    ({"expected_version": 1, "received_from": "yesterday"}, "received_from"),
    ({"expected_version": 1, "filters": {"status": "lost"}}, "filters.status"),
])
def test_bad_input_is_a_400_naming_the_field_and_stores_nothing(
    rig: Rig, fields: dict, field: str
) -> None:
    reply = rig.apply(**fields)
    assert reply.status_code == 400, reply.text
    assert reply.json["description"].startswith(f"{field}: "), reply.json
    assert rig.router.GetRules(router_pb2.GetRulesRequest()).current.version == 1
    assert rig.get("/api/admin/jobs")["items"] == []


def test_a_job_that_is_no_reattribution_is_not_found_there(rig: Rig) -> None:
    assert rig.client.simulate_get(f"{APPLY}/12345", headers=AUTH).status_code == 404
    replay = rig.client.simulate_post("/api/admin/webhook-logs/replay",
                                      json={"filters": {"lead_id": 93001}}, headers=AUTH)
    assert replay.status_code == 202, replay.text
    job_id = replay.json["job"]["id"]
    assert rig.client.simulate_get(f"{APPLY}/{job_id}", headers=AUTH).status_code == 404
    assert rig.client.simulate_get(f"{APPLY}/0", headers=AUTH).status_code == 400


def test_in_file_mode_it_is_a_403_and_nothing_starts(make_database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rules = tmp_path / "routing_rules.yaml"
    rules.write_text(SHIPPED, encoding="utf-8")
    with FakeTelegram(token=TELEGRAM_TOKEN) as telegram:
        services, router_addr = _stack(make_database, telegram, routing_rules=str(rules),
                                       routing_rules_source="file")
        try:
            client = admin_client(migrated_edge_database(make_database), router_addr=router_addr)
            reply = client.simulate_post(APPLY, headers=AUTH, json={
                "yaml": CANDIDATE, "expected_version": 0, "received_from": "2025-01-01",
                "received_to": "2999-01-01"})
            assert reply.status_code == 403, reply.text
            assert "ROUTING_RULES_SOURCE=file" in reply.json["description"]
            assert client.simulate_get("/api/admin/jobs", headers=AUTH).json["items"] == []
            assert rules.read_text(encoding="utf-8") == SHIPPED
        finally:
            services.stop()
