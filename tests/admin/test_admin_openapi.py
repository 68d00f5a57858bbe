"""The admin API keeps to its OpenAPI 3.1 document: schemathesis sends generated requests
(valid and invalid) to every operation of the real app on a real database, with real
services behind the sales pages, and checks every answer against the document."""

from collections.abc import Iterator

import falcon.testing
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from edge.app import create_app
from edge.openapi import load_document
from edge.settings import Settings
from tests.admin.helpers import AUTH, Seeder, migrated_edge_database
from tests.support.services import start_services


@pytest.fixture(scope="module")
def admin_app(make_database) -> Iterator[falcon.App]:  # type: ignore[no-untyped-def]
    services = start_services(make_database)
    database = migrated_edge_database(make_database)
    seeder = Seeder(database)
    for n in range(5):
        seeder.deal(9300000 + n, "kenesary_fb" if n % 2 else "ref_PARTNER")
    seeder.close()
    app = create_app(Settings(
        edge_database_url=database, admin_token=AUTH["Authorization"].removeprefix("Bearer "),
        router_addr=services.start_router(), referral_addr=services.addr("referral"),
        traffic_addr=services.addr("traffic"), notifier_addr=services.addr("notifier"),
    ))
    yield app
    services.stop()


@pytest.fixture(scope="module")
def admin_schema(admin_app: falcon.App):  # type: ignore[no-untyped-def]
    schema = schemathesis.openapi.from_wsgi("/api/admin/openapi.json", admin_app)
    return schema


OPERATIONS = [(path, method) for path, operations in load_document()["paths"].items()
              for method in operations]


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_every_admin_operation_keeps_to_its_document(admin_schema, path: str, method: str) -> None:  # type: ignore[no-untyped-def]
    operation = admin_schema[path][method.upper()]

    # Bounded: the suite runs this on every change.
    @settings(max_examples=40, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(case=operation.as_strategy())
    def keeps_to_the_document(case) -> None:  # type: ignore[no-untyped-def]
        # Left out: valid-by-schema requests may still be refused for reasons a schema cannot
        # state (a cursor this API did not issue, `to` before `from`); and the token check,
        # which test_the_document_is_served_and_names_every_admin_route and
        # test_admin_access.py prove on every operation and every spelling of its path.
        case.headers = {**(case.headers or {}), **AUTH}
        case.call_and_validate(excluded_checks=[positive_data_acceptance, ignored_auth])

    keeps_to_the_document()


def test_the_document_is_served_and_names_every_admin_route(admin_app: falcon.App) -> None:
    client = falcon.testing.TestClient(admin_app)
    served = client.simulate_get("/api/admin/openapi.json")
    assert served.status_code == 200
    assert served.json["openapi"] == "3.1.0"
    paths = set(load_document()["paths"])
    assert paths == {
        "/api/admin/webhook-logs", "/api/admin/webhook-logs/{log_id}",
        "/api/admin/webhook-logs/{log_id}/replay", "/api/admin/webhook-stats",
        "/api/admin/webhook-stats/timeseries",
        "/api/admin/reconcile", "/api/admin/amocrm", "/api/admin/amocrm/webhook/reenable",
        "/api/admin/amocrm/pipelines", "/api/admin/amocrm/custom-fields", "/api/admin/sales/traffic", "/api/admin/sales/referral",
        "/api/admin/sales/traffic/daily", "/api/admin/sales/traffic/sales",
        "/api/admin/sales/referral/daily", "/api/admin/sales/referral/sales",
        "/api/admin/partners/{referral_code}",
        "/api/admin/review/unknown", "/api/admin/review/unknown/dismissals",
        "/api/admin/rules", "/api/admin/rules/versions", "/api/admin/reattribution/preview",
        "/api/admin/reattribution", "/api/admin/reattribution/{job_id}",
        "/api/admin/webhook-logs/replay", "/api/admin/jobs", "/api/admin/jobs/{job_id}",
        "/api/admin/telegram/chats", "/api/admin/telegram/chat-moves/update-rules",
    }
    # Every documented operation is refused without the token.
    for path, operations in load_document()["paths"].items():
        for method in operations:
            concrete = path.replace("{log_id}", "1").replace("{referral_code}", "TEST123")
            concrete = concrete.replace("{job_id}", "1")
            reply = client.simulate_request(method.upper(), concrete)
            assert reply.status_code == 401, (method, path)
