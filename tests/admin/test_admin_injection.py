"""Injection attempts in every admin filter: each is answered 200 with what
matches literally (usually nothing) or 400 naming the parameter; the data is
untouched. SQL is only ever built with bound parameters."""

import pytest
import sqlalchemy as sa

from edge.log_store import webhook_logs
from tests.admin.helpers import AUTH, Seeder, admin_client, migrated_edge_database

ATTEMPTS = [
    "' OR '1'='1",
    "1; DROP TABLE webhook_logs; --",
    "\" OR \"\"=\"",
    "%' OR 1=1 --",
    "_%",
    "\\",
    "1 UNION SELECT * FROM pg_shadow",
    "$(reboot)",
    "<script>alert(1)</script>",
    "ref_\u0000x",
]
FILTERS = ["status", "routing", "lead_id", "source", "q", "cursor", "limit", "received_from",
           "received_to"]


@pytest.fixture(scope="module")
def app(make_database):  # type: ignore[no-untyped-def]
    url = migrated_edge_database(make_database)
    seeder = Seeder(url)
    seeder.deal(9300001, "kenesary_fb", name="Обычная сделка")
    yield admin_client(url), sa.create_engine(url)
    seeder.close()


@pytest.mark.parametrize("name", FILTERS)
def test_injection_in_a_filter_is_matched_literally_or_refused_by_name(app, name: str) -> None:  # type: ignore[no-untyped-def]
    client, engine = app
    for attempt in ATTEMPTS:
        reply = client.simulate_get("/api/admin/webhook-logs", params={name: attempt},
                                    headers=AUTH)
        assert reply.status_code in (200, 400), (name, attempt, reply.text)
        if reply.status_code == 400:
            assert name in reply.json["description"], (name, reply.json)
        else:
            assert reply.json["items"] == [], (name, attempt)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(webhook_logs)).scalar_one() == 1


def test_injection_in_the_stats_window_and_dashboard_dates_is_refused_by_name(app) -> None:  # type: ignore[no-untyped-def]
    client, _ = app
    for path, name in (("webhook-stats", "window"), ("sales/traffic", "from"),
                       ("sales/referral", "to")):
        reply = client.simulate_get(f"/api/admin/{path}", params={name: "1' OR '1'='1"},
                                    headers=AUTH)
        assert reply.status_code == 400 and name in reply.json["description"]
