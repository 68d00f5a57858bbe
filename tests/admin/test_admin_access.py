"""Admin access through the real edge (gunicorn serving the Falcon app): every spelling of
an admin path that reaches an admin resource meets the token check, deny by default."""

from collections.abc import Iterator

import falcon
import falcon.testing
import pytest

from edge.access import SECURITY_HEADERS
from tests.admin.helpers import AUTH, TOKEN, admin_client, migrated_edge_database
from tests.support.edge_server import raw_request, running_edge

# Every admin resource the edge routes, with a method it answers.
ADMIN_ROUTES = [
    ("GET", "api/admin/webhook-logs"),
    ("GET", "api/admin/webhook-logs/1"),
    ("POST", "api/admin/webhook-logs/1/replay"),
    ("GET", "api/admin/webhook-stats"),
    ("GET", "api/admin/webhook-stats/timeseries"),
    ("GET", "api/admin/webhook-logs?format=csv"),
    ("POST", "api/admin/reconcile"),
    ("GET", "api/admin/sales/traffic"),
    ("GET", "api/admin/sales/referral"),
    ("GET", "api/admin/sales/traffic/daily"),
    ("GET", "api/admin/sales/traffic/sales?targetologist=Kenesary"),
    ("GET", "api/admin/sales/traffic/sales?targetologist=Kenesary&format=csv"),
    ("GET", "api/admin/sales/referral/daily"),
    ("GET", "api/admin/sales/referral/sales?referral_code=TEST123"),
    ("GET", "api/admin/sales/traffic?format=csv"),
    ("GET", "api/admin/sales/referral?format=csv"),
    ("PUT", "api/admin/partners/TEST123"),
    ("GET", "api/admin/review/unknown"),
    ("POST", "api/admin/review/unknown/dismissals"),
    ("DELETE", "api/admin/review/unknown/dismissals"),
    ("GET", "api/admin/rules"),
    ("PUT", "api/admin/rules"),
    ("GET", "api/admin/rules/versions"),
    ("POST", "api/admin/webhook-logs/replay"),
    ("GET", "api/admin/jobs"),
    ("GET", "api/admin/jobs/1"),
    ("DELETE", "api/admin/jobs/1"),
    ("GET", "api/admin/telegram/chats"),
    ("POST", "api/admin/telegram/chat-moves/update-rules"),
    ("POST", "api/admin/reattribution/preview"),
    ("POST", "api/admin/reattribution"),
    ("GET", "api/admin/reattribution/1"),
    ("GET", "api/admin/amocrm"),
    ("POST", "api/admin/amocrm/webhook/reenable"),
    ("GET", "api/admin/amocrm/pipelines"),
    ("GET", "api/admin/amocrm/custom-fields"),
]

# Ways to spell a path that a browser, a proxy or gunicorn may pass on to the app.
SPELLINGS = [
    "/{}",
    "//{}",
    "///{}",
    "/%2F{}",
    "/%2f{}",
    "/./{}",
    "/{}/",
    "//{}/",
    "/{upper}",
    "/{mixed}",
    "/api//{rest}",
    "/api/admin//{tail}",
]


def _spell(template: str, path: str) -> str:
    head, _, tail = path.partition("/admin/")
    return template.format(
        path,
        upper=path.upper(),
        mixed=path.replace("api/admin", "Api/Admin"),
        rest=path.removeprefix("api/"),
        tail=tail,
    ) if head == "api" else template.format(path)


@pytest.fixture(scope="module")
def edge_port(make_database, tmp_path_factory) -> Iterator[int]:  # type: ignore[no-untyped-def]
    env = {"EDGE_DATABASE_URL": migrated_edge_database(make_database), "ADMIN_TOKEN": TOKEN,
           "ROUTER_ADDR": "127.0.0.1:9", "REFERRAL_ADDR": "127.0.0.1:9",
           "TRAFFIC_ADDR": "127.0.0.1:9"}
    with running_edge(env, tmp_path_factory.mktemp("edge") / "edge.log") as port:
        yield port


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_no_spelling_of_an_admin_path_skips_the_token(edge_port: int, method: str, path: str) -> None:
    for template in SPELLINGS:
        target = _spell(template, path)
        status, headers, body = raw_request(edge_port, method, target, {})
        # Either the path reaches the resource and its check, or it reaches nothing.
        assert status in (401, 404), (target, status, body[:200])
        for name, value in SECURITY_HEADERS.items():
            assert headers[name.lower()] == value, (target, name)
        assert headers["cache-control"] == "no-store", target
        assert b"items" not in body and b"deal_data" not in body, target


@pytest.mark.parametrize("target", ["//api/admin/webhook-logs", "///api/admin/webhook-stats",
                                    "/%2Fapi/admin/webhook-logs"])
def test_the_reported_bypasses_meet_the_token_check(edge_port: int, target: str) -> None:
    assert raw_request(edge_port, "GET", target, {})[0] == 401
    wrong = raw_request(edge_port, "GET", target, {"Authorization": "Bearer wrong"})
    assert wrong[0] == 401
    # The same spelling with the token reaches the resource: the check is the resource's.
    assert raw_request(edge_port, "GET", target, AUTH)[0] == 200


def test_replay_and_reconcile_cannot_be_triggered_without_the_token(edge_port: int) -> None:
    for target in ("//api/admin/webhook-logs/1/replay", "//api/admin/reconcile",
                   "/%2Fapi/admin/reconcile"):
        assert raw_request(edge_port, "POST", target, {})[0] == 401, target


def test_a_partner_cannot_be_registered_without_the_token(edge_port: int) -> None:
    body = b'{"name": "Intruder", "commission_bp": 10000}'
    json = {"Content-Type": "application/json"}
    for target in ("/api/admin/partners/TEST123", "//api/admin/partners/TEST123",
                   "/%2Fapi/admin/partners/TEST123"):
        assert raw_request(edge_port, "PUT", target, json, body)[0] == 401, target
        wrong = {**json, "Authorization": "Bearer wrong"}
        assert raw_request(edge_port, "PUT", target, wrong, body)[0] == 401, target


@pytest.mark.parametrize("target", ["/healthz", "/metrics", "/webhook/amocrm/test", "/admin/",
                                    "/admin/static/admin.css"])
def test_public_resources_stay_open_and_carry_the_headers(edge_port: int, target: str) -> None:
    status, headers, _ = raw_request(edge_port, "GET", target, {})
    assert status == 200, target
    assert headers["content-security-policy"] == SECURITY_HEADERS["Content-Security-Policy"]


def test_a_new_resource_needs_the_token_unless_marked_public(make_database) -> None:  # type: ignore[no-untyped-def]
    client = admin_client(migrated_edge_database(make_database))

    class Forgotten:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            resp.media = {"secret": True}

    client.app.add_route("/anything/new", Forgotten())
    assert client.simulate_get("/anything/new").status_code == 401
    assert client.simulate_get("/anything/new", headers=AUTH).json == {"secret": True}
