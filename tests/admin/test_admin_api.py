"""The admin API on a real app and database: filters, search, pagination, auth, errors,
stats and headers. The router is not running here: events stay pending, as they would."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import falcon.testing
import pytest

from amoroute.timeutil import now
from edge.access import SECURITY_HEADERS, FailureLimiter
from edge.admin_page import STATIC_DIR
from edge.event_lifecycle import ERROR, Outcome
from edge.log_store import NewLog
from edge.settings import Settings
from tests.admin.helpers import (
    AUTH,
    FORM,
    TOKEN,
    Seeder,
    admin_client,
    migrated_edge_database,
)
from tests.support.forms import encode, won_deal_body
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
def database(make_database) -> str:  # type: ignore[no-untyped-def]
    return migrated_edge_database(make_database)


@pytest.fixture(scope="module")
def client(database: str) -> falcon.testing.TestClient:
    return admin_client(database)


@pytest.fixture(scope="module")
def seed(database: str) -> Iterator[Seeder]:
    seeder = Seeder(database)
    yield seeder
    seeder.close()


def logs(client: falcon.testing.TestClient, **params: object) -> dict:
    reply = client.simulate_get("/api/admin/webhook-logs", params=params, headers=AUTH)
    assert reply.status_code == 200, reply.text
    return reply.json


def ids(client: falcon.testing.TestClient, **params: object) -> list[int]:
    return [item["id"] for item in logs(client, **params)["items"]]


# --- listing and filters ---------------------------------------------------------------------


def test_logs_come_newest_first_with_the_contract_columns(client, seed: Seeder) -> None:
    first = seed.deal(7100001, "kenesary_fb", source="listing")
    second = seed.deal(7100002, "ref_ABC", decision="referral", source="listing")
    page = logs(client, source="listing")
    assert [item["id"] for item in page["items"]] == [second, first]
    assert page["next_cursor"] is None
    item = page["items"][1]
    for column in ("id", "received_at", "source", "pipeline_id", "lead_id", "deal_data",
                   "utm_source", "utm_campaign", "routing_decision", "processing_status",
                   "error_message", "processed_at", "deal_name", "attempts", "processing_ms"):
        assert column in item, column
    assert item["lead_id"] == 7100001
    assert item["deal_name"] == "Сделка #7100001"
    assert item["deal_data"]["lead"]["id"] == "7100001"
    assert (item["routing_decision"], item["processing_status"]) == ("traffic", "success")
    assert datetime.fromisoformat(item["received_at"]).tzinfo is not None


def test_status_and_routing_filters_take_one_value_or_several(client, seed: Seeder) -> None:
    ok = seed.deal(7200001, "kenesary_fb", source="filters")
    failed = seed.deal(7200002, "ref_X", status="error", decision="referral",
                       error="referral: partner service down", source="filters")
    partial = seed.deal(7200003, "ref_Y", "kenesary_x", status="partial", decision="both",
                        source="filters")
    pending = seed.deal(7200004, status="pending", decision=None, source="filters")
    assert ids(client, source="filters", status="error") == [failed]
    assert ids(client, source="filters", status="error,partial") == [partial, failed]
    assert ids(client, source="filters", routing="traffic") == [ok]
    assert ids(client, source="filters", routing=["both", "referral"]) == [partial, failed]
    assert ids(client, source="filters", status="success", routing="referral") == []
    assert ids(client, source="filters", status="pending") == [pending]
    [row] = logs(client, source="filters", status="error")["items"]
    assert row["error_message"] == "referral: partner service down"


def test_lead_id_and_source_filters(client, seed: Seeder) -> None:
    original = seed.deal(7300001, "kenesary_fb", source="amocrm")
    replayed = seed.deal(7300001, "kenesary_fb", source="replay")
    seed.deal(7300002, "kenesary_fb", source="amocrm")
    assert ids(client, lead_id=7300001) == [replayed, original]
    assert ids(client, lead_id=7300001, source="replay") == [replayed]


def test_received_time_range_is_from_inclusive_to_exclusive(client, seed: Seeder) -> None:
    t = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    before = seed.deal(7400001, source="timerange", received_at=t - timedelta(hours=1))
    at = seed.deal(7400002, source="timerange", received_at=t)
    later = seed.deal(7400003, source="timerange", received_at=t + timedelta(hours=1))
    assert ids(client, source="timerange", received_from=t.isoformat()) == [later, at]
    assert ids(client, source="timerange", received_to=t.isoformat()) == [before]
    # An offset is honoured; a time without one is UTC; a date is its midnight.
    assert ids(client, source="timerange", received_from="2025-03-01T17:00:00+05:00",
               received_to="2025-03-01T12:30:00") == [at]
    assert ids(client, source="timerange", received_from="2025-03-02") == []
    # A '+' left unencoded in a query string arrives as a space and still means '+'.
    reply = client.simulate_get("/api/admin/webhook-logs", headers=AUTH,
                                query_string="source=timerange&received_from=2025-03-01T17:00:00+05:00")
    assert [i["id"] for i in reply.json["items"]] == [later, at]


def test_q_searches_deal_names_and_utm_values_case_insensitively(client, seed: Seeder) -> None:
    course = seed.deal(7500001, "kenesary_fb", "tp_june", name="Курс «Таргетолог PRO» — Айгерим",
                       source="search")
    partner = seed.deal(7500002, "ref_PARTNER7", "Spring_Sale", name="Consulting for ACME",
                        decision="referral", source="search")
    literal = seed.deal(7500003, "x", name="50% off_deal", source="search")
    assert ids(client, source="search", q="таргетолог") == [course]
    assert ids(client, source="search", q="acme") == [partner]
    assert ids(client, source="search", q="partner7") == [partner]  # utm_source
    assert ids(client, source="search", q="spring_sale") == [partner]  # utm_campaign
    assert ids(client, source="search", q="KENESARY") == [course]
    # % and _ are searched for, not wildcards.
    assert ids(client, source="search", q="50%") == [literal]
    assert ids(client, source="search", q="%") == [literal]
    assert ids(client, source="search", q="%_o") == []
    # Digits also find the lead itself.
    assert ids(client, source="search", q="7500002") == [partner]
    assert ids(client, source="search", q="  ") == [literal, partner, course]  # blank: no filter


def test_webhook_intake_fills_deal_name_so_search_finds_new_events(client) -> None:
    body = encode(won_deal_body(7600001, "kenesary_fb", name="Webinar &amp; Course"))
    assert client.simulate_post("/webhook/amocrm", body=body, headers=FORM).status_code == 200
    # Routed after the answer: the router is not running, so the try fails.
    [item] = eventually(
        lambda: [i for i in logs(client, q="webinar & course")["items"] if i["processed_at"]]
    )
    assert item["lead_id"] == 7600001
    assert item["deal_name"] == "Webinar & Course"  # AmoCRM's HTML escaping undone
    assert item["processing_status"] == "pending"  # the router is not running
    assert "router UNAVAILABLE" in item["error_message"]


def test_pages_have_no_gaps_or_repeats_while_new_events_arrive(client, seed: Seeder) -> None:
    existing = [seed.deal(7700000 + n, source="paging") for n in range(23)]
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params = {"source": "paging", "limit": 10, **({"cursor": cursor} if cursor else {})}
        page = logs(client, **params)
        seen += [item["id"] for item in page["items"]]
        pages += 1
        # Newer events arrive between pages; they belong before the first page, not in it.
        seed.deal(7790000 + pages, source="paging")
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == sorted(existing, reverse=True)
    assert len(ids(client, source="paging", limit=200)) == 23 + pages


def test_a_full_last_page_says_there_is_nothing_more(client, seed: Seeder) -> None:
    made = [seed.deal(7800000 + n, source="exactpage") for n in range(4)]
    first = logs(client, source="exactpage", limit=2)
    second = logs(client, source="exactpage", limit=2, cursor=first["next_cursor"])
    assert [i["id"] for i in first["items"] + second["items"]] == made[::-1]
    assert second["next_cursor"] is None


# --- one log ---------------------------------------------------------------------------------


def test_one_log_has_its_deal_data_and_every_attempt(client, seed: Seeder) -> None:
    log_id = seed.deal(7900001, "kenesary_fb", status="pending", decision=None,
                       error="router UNAVAILABLE: down")
    seed.store.record_outcomes([Outcome(log_id, "partial", decision="both", legs={
        "referral": "recorded", "traffic": "failed"}, error_message="traffic: timeout",
        retry=True)])
    seed.store.record_outcomes([Outcome(log_id, "success", decision="both", legs={
        "traffic": "recorded"})])
    reply = client.simulate_get(f"/api/admin/webhook-logs/{log_id}", headers=AUTH)
    assert reply.status_code == 200
    detail = reply.json
    assert detail["id"] == log_id and detail["deal_data"]["lead"]["id"] == "7900001"
    assert detail["legs"] == {"referral": "recorded", "traffic": "recorded"}
    attempts = detail["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["status"] for a in attempts] == ["pending", "partial", "success"]
    assert attempts[0]["error_message"] == "router UNAVAILABLE: down"
    assert attempts[1]["legs"] == {"referral": "recorded", "traffic": "failed"}
    assert attempts[1]["routing_decision"] == "both"
    assert all(a["duration_ms"] >= 0 and a["at"] for a in attempts)
    assert detail["replayed_as"] == []


def test_unknown_log_is_404_for_reading_and_replaying(client) -> None:
    assert client.simulate_get("/api/admin/webhook-logs/999999", headers=AUTH).status_code == 404
    reply = client.simulate_post("/api/admin/webhook-logs/999999/replay", headers=AUTH)
    assert reply.status_code == 404
    assert "999999" in reply.json["description"]
    assert client.simulate_get("/api/admin/webhook-logs/abc", headers=AUTH).status_code == 404


def test_an_unparseable_body_cannot_be_replayed(client, seed: Seeder) -> None:
    replays_before = ids(client, source="replay", limit=200)
    [log_id] = seed.store.insert([NewLog(source="amocrm", deal_data={"raw_body": "%%%"},
                                         processing_status=ERROR,
                                         error_message="unparseable webhook body")])
    reply = client.simulate_post(f"/api/admin/webhook-logs/{log_id}/replay", headers=AUTH)
    assert reply.status_code == 409
    assert f"webhook log {log_id} cannot be replayed" in reply.json["description"]
    assert ids(client, source="replay", limit=200) == replays_before


def test_replay_while_the_router_is_down_is_logged_for_the_worker(client, seed: Seeder) -> None:
    original = seed.deal(7950001, "kenesary_fb", status="error", error="gave up")
    reply = client.simulate_post(f"/api/admin/webhook-logs/{original}/replay", headers=AUTH)
    assert reply.status_code == 201, reply.text
    replay = reply.json
    assert replay["id"] > original and replay["source"] == "replay"
    assert replay["replay_of"] == original
    assert replay["processing_status"] == "pending" and replay["retry_at"]
    assert reply.headers["Location"] == f"/api/admin/webhook-logs/{replay['id']}"


# --- bad parameters --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("webhook-logs", {"status": "done"},
         "status: must be one of pending, success, partial, error"),
        ("webhook-logs", {"routing": "sideways"},
         "routing: must be one of referral, traffic, both, unknown, ignored"),
        ("webhook-logs", {"lead_id": "abc"}, "lead_id: must be an integer"),
        ("webhook-logs", {"lead_id": "0"}, "lead_id: must be an integer"),
        ("webhook-logs", {"limit": "0"}, "limit: must be an integer from 1 to 200"),
        ("webhook-logs", {"limit": "201"}, "limit: must be an integer from 1 to 200"),
        ("webhook-logs", {"cursor": "not-a-cursor"}, "cursor: is not a next_cursor"),
        ("webhook-logs", {"received_from": "yesterday"}, "received_from: 'yesterday' is not"),
        ("webhook-logs", {"received_from": "2025-06-02", "received_to": "2025-06-01"},
         "received_to: must be later than received_from"),
        ("webhook-logs", {"source": "AmoCRM!"}, "source: must be a source name"),
        ("webhook-logs", {"q": "x" * 201}, "q: must be at most 200 characters"),
        ("webhook-logs", {"limit": ["1", "2"]}, "limit: given more than once"),
        ("webhook-logs", {"stauts": "error"}, "stauts: unknown parameter"),
        ("webhook-stats", {"window": "1w"}, "window: must be a number and a unit"),
        ("webhook-stats", {"window": "400d"}, "window: must be at most 366d"),
        ("sales/traffic", {"from": "June"}, "from: 'June' is not an ISO 8601"),
        ("sales/referral", {"from": "2025-06-02", "to": "2025-06-01"},
         "to: must be later than from"),
    ],
)
def test_bad_parameters_get_400_naming_the_parameter(client, path, params, message) -> None:  # type: ignore[no-untyped-def]
    reply = client.simulate_get(f"/api/admin/{path}", params=params, headers=AUTH)
    assert reply.status_code == 400
    assert reply.json["title"] == "400 Bad Request"
    assert reply.json["description"].startswith(message), reply.json["description"]


# --- stats -----------------------------------------------------------------------------------


def test_stats_count_by_status_and_routing_with_percentiles(make_database) -> None:  # type: ignore[no-untyped-def]
    database = migrated_edge_database(make_database)
    client, seed = admin_client(database), Seeder(database)
    try:
        timings = [10, 20, 30, 40, 50, 60, 70, 80, 90, 1000]
        for n, ms in enumerate(timings[:7]):
            seed.deal(8000000 + n, "kenesary_fb", processing_ms=ms)
        seed.deal(8000010, "ref_A", decision="referral", status="error", error="x",
                  processing_ms=timings[7])
        seed.deal(8000011, "ref_B", "kenesary_b", decision="both", status="partial",
                  processing_ms=timings[8])
        seed.deal(8000012, decision="unknown", processing_ms=timings[9])
        seed.deal(8000013, status="pending", decision=None)
        seed.deal(8000014, received_at=now() - timedelta(days=2), processing_ms=99999)

        stats = client.simulate_get("/api/admin/webhook-stats", headers=AUTH).json
        assert stats["window"] == "24h"
        assert stats["total"] == 11
        assert stats["by_status"] == {"pending": 1, "success": 8, "partial": 1, "error": 1}
        assert stats["by_routing"] == {"referral": 1, "traffic": 7, "both": 1, "unknown": 1,
                                       "ignored": 0, "undecided": 1}
        assert stats["finished"] == 10
        assert stats["success_rate"] == 0.8
        # The pending event has no processing time yet; the two-day-old one is outside.
        assert stats["processing_ms"] == {"p50": 50, "p95": 1000, "count": 10}

        week = client.simulate_get("/api/admin/webhook-stats", params={"window": "7d"},
                                   headers=AUTH).json
        assert week["total"] == 12 and week["processing_ms"]["p95"] == 99999
        assert client.simulate_get("/api/admin/webhook-stats", params={"window": "1h"},
                                   headers=AUTH).json["total"] == 11
        since = datetime.fromisoformat(week["since"])
        until = datetime.fromisoformat(week["until"])
        assert until - since == timedelta(days=7)
        # The retention in force and the oldest event kept (the two-day-old one).
        retention = week["retention"]
        assert {k: retention[k] for k in ("days", "error_days", "interval_s", "last_run")} == {
            "days": 90, "error_days": 180, "interval_s": 3600, "last_run": None}
        oldest = datetime.fromisoformat(retention["oldest_received_at"])
        assert timedelta(days=2) <= now() - oldest < timedelta(days=2, minutes=5)
    finally:
        seed.close()


def test_stats_of_an_empty_window_have_no_rates(make_database) -> None:  # type: ignore[no-untyped-def]
    client = admin_client(migrated_edge_database(make_database))
    stats = client.simulate_get("/api/admin/webhook-stats", params={"window": "30m"},
                                headers=AUTH).json
    assert stats["total"] == 0 and stats["success_rate"] is None
    assert stats["processing_ms"] == {"p50": None, "p95": None, "count": 0}


# --- access ----------------------------------------------------------------------------------

ADMIN_ENDPOINTS = [
    ("GET", "/api/admin/webhook-logs"),
    ("GET", "/api/admin/webhook-logs/1"),
    ("POST", "/api/admin/webhook-logs/1/replay"),
    ("GET", "/api/admin/webhook-stats"),
    ("GET", "/api/admin/sales/traffic"),
    ("GET", "/api/admin/sales/referral"),
    ("POST", "/api/admin/reconcile"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS)
def test_every_admin_endpoint_needs_the_bearer_token(database: str, method: str, path: str) -> None:
    client = admin_client(database)  # its own failure counter
    missing = client.simulate_request(method, path)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in missing.json["description"]
    for header in (f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer "):
        wrong = client.simulate_request(method, path, headers={"Authorization": header})
        assert wrong.status_code == 401, header
        assert wrong.json["description"] == "the admin token is wrong"


def test_without_admin_token_the_api_and_ui_refuse_everyone(database: str) -> None:
    client = admin_client(database, admin_token="")
    for method, path in ADMIN_ENDPOINTS:
        for headers in ({}, {"Authorization": "Bearer "}, AUTH):
            reply = client.simulate_request(method, path, headers=headers)
            assert reply.status_code == 503, (path, headers)
            assert "ADMIN_TOKEN" in reply.json["description"]
    page = client.simulate_get("/admin/")
    assert page.status_code == 503 and "ADMIN_TOKEN" in page.text


def test_failed_sign_ins_are_limited_per_client_address(database: str) -> None:
    client = admin_client(database)
    wrong = {"Authorization": "Bearer guess"}
    for _ in range(10):
        reply = client.simulate_get("/api/admin/webhook-stats", headers=wrong,
                                    remote_addr="203.0.113.7")
        assert reply.status_code == 401
    blocked = client.simulate_get("/api/admin/webhook-stats", headers=wrong,
                                  remote_addr="203.0.113.7")
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert "too many failed sign-ins" in blocked.json["description"]
    # The right token is never refused, even from the address that guessed wrong.
    right = client.simulate_get("/api/admin/webhook-stats", headers=AUTH,
                                remote_addr="203.0.113.7")
    assert right.status_code == 200
    # Another address is not affected.
    other = client.simulate_get("/api/admin/webhook-stats", headers=wrong,
                                remote_addr="203.0.113.8")
    assert other.status_code == 401


def test_behind_a_trusted_proxy_each_client_is_limited_apart(database: str) -> None:
    client = admin_client(database, forwarded_allow_ips="10.0.0.0/8")
    ingress = "10.1.2.3"
    wrong = {"Authorization": "Bearer guess"}
    for _ in range(10):
        reply = client.simulate_get("/api/admin/webhook-stats", remote_addr=ingress,
                                    headers={**wrong, "X-Forwarded-For": "198.51.100.9, 10.9.9.9"})
        assert reply.status_code == 401
    guesser = client.simulate_get("/api/admin/webhook-stats", remote_addr=ingress,
                                  headers={**wrong, "X-Forwarded-For": "198.51.100.9"})
    assert guesser.status_code == 429
    assert "198.51.100.9" in guesser.json["description"]
    # Someone else behind the same ingress still gets an honest answer.
    other = client.simulate_get("/api/admin/webhook-stats", remote_addr=ingress,
                                headers={**wrong, "X-Forwarded-For": "198.51.100.10"})
    assert other.status_code == 401


def test_an_untrusted_peer_cannot_choose_its_address(database: str) -> None:
    client = admin_client(database, forwarded_allow_ips="10.0.0.0/8")
    wrong = {"Authorization": "Bearer guess"}
    for n in range(10):
        reply = client.simulate_get("/api/admin/webhook-stats", remote_addr="203.0.113.50",
                                    headers={**wrong, "X-Forwarded-For": f"192.0.2.{n}"})
        assert reply.status_code == 401
    spoofed = client.simulate_get("/api/admin/webhook-stats", remote_addr="203.0.113.50",
                                  headers={**wrong, "X-Forwarded-For": "192.0.2.200"})
    assert spoofed.status_code == 429
    assert "203.0.113.50" in spoofed.json["description"]


def test_failure_limit_forgets_failures_after_the_window() -> None:
    clock = [1000.0]
    limiter = FailureLimiter(limit=3, window_s=60, clock=lambda: clock[0])
    for _ in range(3):
        limiter.fail("a")
    assert limiter.retry_after("a") == 61
    clock[0] += 30
    assert limiter.retry_after("a") == 31
    clock[0] += 30.5
    assert limiter.retry_after("a") == 0


def test_the_limiter_forgets_one_off_addresses_and_stays_bounded() -> None:
    clock = [1000.0]
    limiter = FailureLimiter(limit=10, window_s=60, clock=lambda: clock[0], max_clients=1000)
    for n in range(50_000):
        limiter.fail(f"198.18.{n // 256}.{n % 256}")
    assert limiter.clients() == 1000
    clock[0] += 3600
    assert limiter.clients() == 0


@pytest.mark.parametrize("token", ["secret", "x" * 31])
def test_a_short_admin_token_is_refused_at_start(token: str) -> None:
    with pytest.raises(ValueError, match="ADMIN_TOKEN must be at least 32 characters"):
        Settings(admin_token=token)
    assert Settings(admin_token="y" * 32).admin_token.get_secret_value() == "y" * 32


# --- headers and the UI's files --------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/api/admin/webhook-logs", AUTH, 200),
        ("/api/admin/webhook-logs", {}, 401),
        ("/api/admin/webhook-logs/424242", AUTH, 404),
        ("/api/admin/webhook-stats?window=2y", AUTH, 400),
        ("/admin/", {}, 200),
        ("/admin/static/js/main.js", {}, 200),
        ("/admin/static/admin.css", {}, 200),
        ("/admin/static/nothing.js", {}, 404),
    ],
)
def test_admin_answers_carry_the_security_headers(client, path, headers, status) -> None:  # type: ignore[no-untyped-def]
    reply = client.simulate_get(path.split("?")[0], headers=headers,
                                query_string=path.partition("?")[2])
    assert reply.status_code == status
    for name, value in SECURITY_HEADERS.items():
        assert reply.headers[name] == value
    assert "unsafe-inline" not in reply.headers["Content-Security-Policy"]
    if path.startswith("/api/"):
        assert reply.headers["Cache-Control"] == "no-store"


def test_ui_page_loads_its_module_and_styles_from_self_only(client) -> None:
    page = client.simulate_get("/admin/")
    assert page.headers["Content-Type"].startswith("text/html")
    html = page.text
    assert '<script type="module" src="/admin/static/js/main.js"></script>' in html
    assert "<script>" not in html and " style=" not in html and "onclick" not in html
    assert "http://" not in html and "https://" not in html  # no CDN
    assert client.simulate_get("/admin").headers["Location"] == "/admin/"
    script = client.simulate_get("/admin/static/js/logs.js")
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert "innerHTML" not in script.text


def test_ui_scripts_never_write_html_strings() -> None:
    for script in (STATIC_DIR / "js").glob("*.js"):
        text = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                     "new Function", ".style."):
            assert sink not in text, f"{script.name} uses {sink}"


def test_public_paths_are_open_and_carry_the_headers_too(client) -> None:
    reply = client.simulate_get("/healthz")
    assert reply.status_code == 200
    assert reply.headers["Content-Security-Policy"] == SECURITY_HEADERS["Content-Security-Policy"]


def test_sales_say_which_service_is_unreachable(client) -> None:
    reply = client.simulate_get("/api/admin/sales/traffic", headers=AUTH)
    assert reply.status_code == 503
    assert reply.json["description"].startswith("traffic_svc at 127.0.0.1:9 did not answer")
    reply = client.simulate_get("/api/admin/sales/referral", headers=AUTH)
    assert reply.status_code == 503
    assert "referral_svc" in reply.json["description"]
