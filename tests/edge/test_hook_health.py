"""Hook health (issue #25, points 3 and 4), on a real database (PostgreSQL, or SQLite with
AMOROUTE_TEST_DB=sqlite), the real edge app, real gRPC services and the stand-in AmoCRM as a
real HTTP server: invalid webhook answers counted over 2 hours by every process together,
the worker's mark of when the hook was disabled, re-enabling it followed by a reconciliation
from that moment, the admin's card, and the account's pipelines and custom fields."""

import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import falcon.testing
import pytest
import sqlalchemy as sa

from edge.app import create_app
from edge.hook_health import (
    DISABLED_MARK,
    HOOK_EVENTS,
    KEEP_S,
    WINDOW_S,
    InvalidAnswerRecorder,
    InvalidAnswerStore,
    invalid_answers,
    invalid_cause,
    note_hook_state,
)
from edge.log_store import WebhookLogStore
from edge.settings import Settings
from tests.admin.helpers import AUTH, FORM, TOKEN, migrated_edge_database
from tests.support.fake_amocrm import FIXTURES, FakeAmoCrm
from tests.support.services import Services, start_services
from tests.support.waiting import eventually

SECRET = "long-random-secret"  # the path of the stand-in's hook
HOOK_URL = f"https://amoroute.example/webhook/amocrm/{SECRET}"
AMOCRM_TOKEN = "test-amocrm-token"


@pytest.fixture(scope="module")
def services(make_database) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    running = start_services(make_database)
    running.start_router()
    yield running
    running.stop()


@pytest.fixture
def amocrm() -> Iterator[FakeAmoCrm]:
    with FakeAmoCrm(token=AMOCRM_TOKEN) as fake:
        yield fake


@pytest.fixture
def database(make_database) -> str:  # type: ignore[no-untyped-def]
    return migrated_edge_database(make_database)


def edge(database: str, services: Services | None, amocrm: FakeAmoCrm | None,
         **extra: Any) -> falcon.testing.TestClient:
    values: dict[str, Any] = {
        "edge_database_url": database,
        "admin_token": TOKEN,
        "webhook_secret": SECRET,
        "router_addr": services.addr("router") if services else "127.0.0.1:9",
        "referral_addr": services.addr("referral") if services else "127.0.0.1:9",
        "traffic_addr": services.addr("traffic") if services else "127.0.0.1:9",
        **extra,
    }
    if amocrm is not None:
        values.update(amocrm_domain="onaiagencykz", amocrm_api_url=amocrm.url,
                      amocrm_access_token=AMOCRM_TOKEN)
    return falcon.testing.TestClient(create_app(Settings(**values)))


def card(client: falcon.testing.TestClient) -> dict[str, Any]:
    reply = client.simulate_get("/api/admin/amocrm", headers=AUTH)
    assert reply.status_code == 200, reply.text
    return reply.json  # type: ignore[no-any-return]


def won_lead(lead_id: int, updated_at: int) -> dict[str, Any]:
    lead = json.loads((FIXTURES / "lead_v4.json").read_text(encoding="utf-8"))
    lead = copy.deepcopy(lead)
    lead.update(id=lead_id, updated_at=updated_at, status_id=142, pipeline_id=10418746)
    return lead


# --- counting invalid answers ----------------------------------------------------------------


def test_what_amocrm_counts_invalid() -> None:
    assert invalid_cause("200 OK", 0.05) is None
    assert invalid_cause(204, 1.99) is None
    assert invalid_cause("200 OK", 2.5) == "slow"
    assert invalid_cause("503 Service Unavailable", 0.01) == "503"
    assert invalid_cause("404 Not Found", 3.0) == "404"
    assert invalid_cause("302 Found", 0.01) == "302"


def test_invalid_answers_of_the_webhook_are_counted_for_the_card(
    database: str,
) -> None:
    client = edge(database, None, None)
    assert card(client)["invalid_answers_2h"] == {"total": 0, "by_cause": {}}
    body = (FIXTURES / "status_won_with_utm.form").read_bytes()
    # AmoCRM sending to a wrong secret path, and a body that is not a form: both invalid.
    assert client.simulate_post("/webhook/amocrm/wrong", body=body, headers=FORM).status_code == 404
    refused = client.simulate_post(f"/webhook/amocrm/{SECRET}", body=body,
                                   headers={"Content-Type": "text/plain"})
    assert refused.status_code == 415
    answered = client.simulate_post(f"/webhook/amocrm/{SECRET}", body=body, headers=FORM)
    assert answered.status_code == 200  # valid: not counted (the router is not reachable)
    counted = eventually(lambda: card(client)["invalid_answers_2h"]["total"] == 2)
    assert counted, card(client)["invalid_answers_2h"]
    assert card(client)["invalid_answers_2h"]["by_cause"] == {"404": 1, "415": 1}


def test_the_count_is_shared_and_covers_two_hours(database: str) -> None:
    engine = sa.create_engine(database)
    store, other = InvalidAnswerStore(engine), InvalidAnswerStore(engine)
    now = 1_800_000_000
    minute = now // 60 * 60
    store.add({(minute, "503"): 3, (minute - 60, "slow"): 1}, now)
    other.add({(minute, "503"): 2}, now)  # another process, the same minute
    store.add({(minute - WINDOW_S - 60, "503"): 40}, now)  # older than 2 hours
    store.add({(minute - KEEP_S - 60, "500"): 7}, now)  # older than a day: deleted
    assert other.recent(now) == {"503": 5, "slow": 1}
    with engine.connect() as conn:
        kept = conn.execute(sa.select(invalid_answers.c.cause)).scalars().all()
    assert "500" not in kept and kept.count("503") == 2
    engine.dispose()


def test_counts_wait_in_memory_while_the_database_refuses_them(database: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The case of a 503: the event could not be stored because the database is unreachable.
    down = sa.create_engine(f"sqlite:///{tmp_path}/no/such/dir/edge.sqlite3")
    store = InvalidAnswerStore(down)
    recorder = InvalidAnswerRecorder(store, flush_every_s=3600)
    recorder.record("503")
    recorder.record("503")
    assert recorder.flush() is False
    store.engine = sa.create_engine(database)  # the database is back
    assert recorder.flush() is True
    assert store.recent() == {"503": 2}
    store.engine.dispose()


# --- the disabled hook: the mark, the re-enable action, the card --------------------------------


def test_the_worker_marks_when_the_hook_was_last_seen_enabled(database: str) -> None:
    logs = WebhookLogStore(sa.create_engine(database))
    enabled = {"started_at": 1_800_000_000.5, "hook_disabled": False, "errors": []}
    note_hook_state(logs, True, enabled, 1_800_000_300)
    assert logs.checkpoint(DISABLED_MARK) == 1_800_000_000
    # Seen disabled again later: the moment stays the first one.
    note_hook_state(logs, True, {"started_at": 1_800_000_300, "hook_disabled": True},
                    1_800_000_600)
    assert logs.checkpoint(DISABLED_MARK) == 1_800_000_000
    note_hook_state(logs, False, None, 1_800_000_900)
    assert logs.checkpoint(DISABLED_MARK) is None
    # Disabled at the first check: AmoCRM's whole 2-hour window is assumed.
    note_hook_state(logs, True, None, 1_800_000_900)
    assert logs.checkpoint(DISABLED_MARK) == 1_800_000_900 - WINDOW_S
    logs.engine.dispose()


def test_a_disabled_hook_is_re_enabled_and_the_missed_deals_reconciled(
    database: str, services: Services, amocrm: FakeAmoCrm
) -> None:
    amocrm.disable_webhooks()
    now = int(time.time())
    logs = WebhookLogStore(sa.create_engine(database))
    # The worker saw the hook enabled 20 minutes ago, then disabled.
    note_hook_state(logs, True, {"started_at": now - 1200, "hook_disabled": False}, now - 600)
    missed = won_lead(91000001, now - 900)  # won while the hook was off
    amocrm.add_lead(missed)
    client = edge(database, services, amocrm)
    assert client.simulate_post("/api/admin/reconcile", headers=AUTH).status_code == 200

    before = card(client)
    assert before["account"] == "onaiagencykz"
    assert before["status"] == "static_token"
    assert before["webhook"]["state"] == "disabled"
    assert before["webhook"]["disabled_since"] is not None
    assert before["webhook"]["destinations"] == ["https://amoroute.example/webhook/amocrm/…"]
    assert SECRET not in json.dumps(before)
    assert before["last_reconciliation"]["routed"] >= 1  # the regular pass found it too

    reply = client.simulate_post("/api/admin/amocrm/webhook/reenable", headers=AUTH)
    assert reply.status_code == 200, reply.text
    answer = reply.json
    assert answer["webhook"] == {"destination": "https://amoroute.example/webhook/amocrm/…",
                                 "disabled": False, "settings": list(HOOK_EVENTS)}
    assert SECRET not in reply.text
    posted = [r for r in amocrm.requests if r.method == "POST" and r.path == "/api/v4/webhooks"]
    assert len(posted) == 1
    ours = [h for h in amocrm.webhooks if h["destination"] == HOOK_URL]
    assert len(ours) == 1 and ours[0]["disabled"] is False
    assert ours[0]["settings"] == list(HOOK_EVENTS)
    # The reconciliation read the leads from the moment the hook was last seen enabled.
    lead_calls = [r for r in amocrm.requests if r.path == "/api/v4/leads"]
    assert lead_calls[-1].values("filter[updated_at][from]") == [str(now - 1200 - 3600)]
    assert answer["reconciliation"]["leads_seen"] >= 1
    assert answer["reconciliation"]["hook_disabled"] is False
    assert logs.checkpoint(DISABLED_MARK) is None

    after = card(client)
    assert after["webhook"]["state"] == "enabled"
    assert after["webhook"]["disabled_since"] is None
    # Once enabled, the action has nothing to do.
    again = client.simulate_post("/api/admin/amocrm/webhook/reenable", headers=AUTH)
    assert again.status_code == 409 and "enabled already" in again.json["description"]
    logs.engine.dispose()


def test_re_enabling_routes_a_deal_won_while_the_hook_was_off(
    database: str, services: Services, amocrm: FakeAmoCrm
) -> None:
    amocrm.disable_webhooks()
    now = int(time.time())
    logs = WebhookLogStore(sa.create_engine(database))
    note_hook_state(logs, True, {"started_at": now - 1200, "hook_disabled": False}, now - 600)
    amocrm.set_leads([won_lead(91000002, now - 900)])
    client = edge(database, services, amocrm, edge_public_url="https://edge.example")
    reply = client.simulate_post("/api/admin/amocrm/webhook/reenable", headers=AUTH)
    assert reply.status_code == 200, reply.text
    assert reply.json["reconciliation"]["routed"] == [91000002]
    routed = [row for row in logs.by_lead(91000002) if row["source"] == "reconcile"]
    assert len(routed) == 1
    # EDGE_PUBLIC_URL names the destination: a new hook, with the secret path.
    destinations = {h["destination"]: h["disabled"] for h in amocrm.webhooks}
    assert destinations[f"https://edge.example/webhook/amocrm/{SECRET}"] is False
    logs.engine.dispose()


def test_re_enabling_says_why_it_cannot(database: str, amocrm: FakeAmoCrm) -> None:
    off = edge(database, None, None)
    reply = off.simulate_post("/api/admin/amocrm/webhook/reenable", headers=AUTH)
    assert reply.status_code == 409 and "AMOCRM_DOMAIN" in reply.json["description"]
    amocrm.set_webhooks([])
    client = edge(database, None, amocrm)
    reply = client.simulate_post("/api/admin/amocrm/webhook/reenable", headers=AUTH)
    assert reply.status_code == 409 and "EDGE_PUBLIC_URL" in reply.json["description"]
    amocrm.fail_next(403)
    reply = client.simulate_post("/api/admin/amocrm/webhook/reenable", headers=AUTH)
    assert reply.status_code == 502 and "403" in reply.json["description"]


# --- pipelines and custom fields -----------------------------------------------------------------


def test_the_pipelines_and_custom_fields_come_from_the_api(
    database: str,
) -> None:
    fields = [{"id": 1500000 + n, "name": f"Поле {n}", "type": "text", "code": None,
               "sort": n, "enums": None} for n in range(1, 71)]
    fields[3].update(name="utm_source", type="tracking_data", code="UTM_SOURCE")
    fields[9].update(type="select", enums=[{"id": 7001, "value": "PRO", "sort": 1}])
    with FakeAmoCrm(token=AMOCRM_TOKEN, custom_fields=fields) as amocrm:
        client = edge(database, None, amocrm)
        reply = client.simulate_get("/api/admin/amocrm/pipelines", headers=AUTH)
        assert reply.status_code == 200, reply.text
        pipelines = reply.json["pipelines"]
        assert [(p["id"], p["name"], p["is_main"]) for p in pipelines] == [
            (10418746, "Продажи", True), (10418750, "Партнёры", False)]
        assert {"id": 142, "name": "Успешно реализовано", "type": 0} in pipelines[0]["statuses"]
        assert pipelines[0]["statuses"][0] == {"id": 81620102, "name": "Неразобранное", "type": 1}

        reply = client.simulate_get("/api/admin/amocrm/custom-fields", headers=AUTH)
        assert reply.status_code == 200, reply.text
        listed = reply.json["custom_fields"]
        assert [f["id"] for f in listed] == [f["id"] for f in fields]  # both pages
        assert listed[3] == {"id": 1500004, "name": "utm_source", "code": "UTM_SOURCE",
                             "type": "tracking_data", "enums": []}
        assert listed[9]["enums"] == [{"id": 7001, "value": "PRO"}]
        pages = [r.values("page") for r in amocrm.requests if r.path.endswith("custom_fields")]
        assert pages == [[], ["2"]]

        amocrm.fail_next(401)
        reply = client.simulate_get("/api/admin/amocrm/pipelines", headers=AUTH)
        assert reply.status_code == 502 and "AMOCRM_ACCESS_TOKEN" in reply.json["description"]


def test_without_the_api_the_lists_say_how_to_configure_it(database: str) -> None:
    client = edge(database, None, None)
    for path in ("/api/admin/amocrm/pipelines", "/api/admin/amocrm/custom-fields"):
        reply = client.simulate_get(path, headers=AUTH)
        assert reply.status_code == 409 and "AMOCRM_DOMAIN" in reply.json["description"]
    assert card(client)["webhook"]["state"] == "unknown"
    assert card(client)["last_reconciliation"] is None
