"""Input beyond what amoroute can represent (times past year 9999 or before 1970 once in
UTC, ids beyond int64) is a 400 naming the parameter, never a 500 (issue #8, point 6)."""

import base64

import falcon.testing
import pytest

from tests.admin.helpers import AUTH, admin_client, migrated_edge_database

TOO_BIG_ID = 2**63  # 9223372036854775808: one past int64
RANGE = "must be a time from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z"
OUT_OF_RANGE_MOMENTS = [
    "9999-12-31T23:59:59-01:00",  # 10000-01-01T00:59:59Z
    "0001-01-01T00:00:00+01:00",  # 0000-12-31T23:00:00Z
    "1969-12-31T23:59:59Z",
]


@pytest.fixture(scope="module")
def client(make_database) -> falcon.testing.TestClient:  # type: ignore[no-untyped-def]
    return admin_client(migrated_edge_database(make_database))


def assert_400_naming(reply: falcon.testing.Result, name: str, problem: str = "") -> None:
    assert reply.status_code == 400, (reply.status_code, reply.text)
    assert reply.json["description"].startswith(f"{name}: {problem}"), reply.json


@pytest.mark.parametrize("value", OUT_OF_RANGE_MOMENTS)
@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("webhook-logs", "received_from"),
        ("webhook-logs", "received_to"),
        ("sales/traffic", "from"),
        ("sales/traffic", "to"),
        ("sales/referral", "from"),
        ("sales/referral", "to"),
    ],
)
def test_a_time_outside_the_range_is_400_naming_the_parameter(
    client: falcon.testing.TestClient, path: str, name: str, value: str
) -> None:
    reply = client.simulate_get(f"/api/admin/{path}", params={name: value}, headers=AUTH)
    assert_400_naming(reply, name, RANGE)


def test_the_ends_of_the_range_are_accepted(client: falcon.testing.TestClient) -> None:
    reply = client.simulate_get(
        "/api/admin/webhook-logs",
        params={"received_from": "1970-01-01T05:00:00+05:00",
                "received_to": "9999-12-31T23:59:59.999999Z"},
        headers=AUTH,
    )
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("log_id", [TOO_BIG_ID, 10**30, 0])
def test_a_log_id_beyond_int64_is_400_for_reading_and_replaying(
    client: falcon.testing.TestClient, log_id: int
) -> None:
    assert_400_naming(
        client.simulate_get(f"/api/admin/webhook-logs/{log_id}", headers=AUTH), "log_id"
    )
    assert_400_naming(
        client.simulate_post(f"/api/admin/webhook-logs/{log_id}/replay", headers=AUTH), "log_id"
    )


def test_the_largest_int64_log_id_is_simply_not_found(client: falcon.testing.TestClient) -> None:
    reply = client.simulate_get(f"/api/admin/webhook-logs/{2**63 - 1}", headers=AUTH)
    assert reply.status_code == 404


@pytest.mark.parametrize("decoded", [f"id:{TOO_BIG_ID}", "id:-5", "id:0", "id: 7", "id:1_000"])
def test_a_cursor_that_decodes_beyond_int64_is_400_naming_the_cursor(
    client: falcon.testing.TestClient, decoded: str
) -> None:
    cursor = base64.urlsafe_b64encode(decoded.encode()).decode().rstrip("=")
    reply = client.simulate_get(
        "/api/admin/webhook-logs", params={"cursor": cursor}, headers=AUTH
    )
    assert_400_naming(reply, "cursor")
