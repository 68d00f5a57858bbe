"""A request id the caller sends in X-Request-Id that is not 1-64 ASCII letters, digits,
'.', '_' or '-' is replaced, never refused, and never breaks a request that calls a gRPC
service (issue #8, point 7): the real edge under gunicorn, real services behind it, the
header sent as raw bytes."""

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.admin.helpers import AUTH, TOKEN, Seeder, migrated_edge_database
from tests.support.edge_server import raw_request, running_edge
from tests.support.services import start_services

VALID_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
BAD_IDS = ["é", "x" * 65, "a b", "a/b;c", "日本"]


@dataclass
class Edge:
    port: int
    seed: Seeder


@pytest.fixture(scope="module")
def edge(make_database, tmp_path_factory) -> Iterator[Edge]:  # type: ignore[no-untyped-def]
    services = start_services(make_database)
    router = services.start_router()
    database = migrated_edge_database(make_database)
    env = {"EDGE_DATABASE_URL": database, "ADMIN_TOKEN": TOKEN, "ROUTER_ADDR": router,
           "REFERRAL_ADDR": services.addr("referral"), "TRAFFIC_ADDR": services.addr("traffic")}
    seed = Seeder(database)
    try:
        with running_edge(env, tmp_path_factory.mktemp("edge") / "edge.log") as port:
            yield Edge(port, seed)
    finally:
        seed.close()
        services.stop()


def calls(edge: Edge) -> list[tuple[str, str, int]]:
    """(method, path, the status a good request gets) for each request that calls a service."""
    log_id = edge.seed.deal(8700001, "kenesary_fb", status="error", error="gave up")
    return [
        ("GET", "/readyz", 200),
        ("GET", "/api/admin/sales/traffic", 200),
        ("GET", "/api/admin/sales/referral", 200),
        ("POST", f"/api/admin/webhook-logs/{log_id}/replay", 201),
    ]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_a_bad_request_id_is_replaced_and_every_call_still_answers(edge: Edge, bad: str) -> None:
    for method, path, expected in calls(edge):
        status, headers, body = raw_request(edge.port, method, path,
                                            {**AUTH, "X-Request-Id": bad})
        assert status == expected, (path, status, body[:300])
        answered = headers["x-request-id"]
        assert VALID_ID.fullmatch(answered) and answered != bad, (path, answered)


def test_a_good_request_id_is_kept(edge: Edge) -> None:
    for method, path, expected in calls(edge):
        status, headers, _ = raw_request(edge.port, method, path,
                                         {**AUTH, "X-Request-Id": "trace-42.A_b"})
        assert status == expected and headers["x-request-id"] == "trace-42.A_b", path
