"""Admin access through the real edge (gunicorn serving the Falcon app): every spelling of
an admin path that reaches an admin resource meets the token check, deny by default."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import falcon
import falcon.testing
import pytest

from edge.access import SECURITY_HEADERS
from tests.admin.helpers import AUTH, TOKEN, admin_client, migrated_edge_database
from tests.support.stack import REPO, free_port

# Every admin resource the edge routes, with a method it answers.
ADMIN_ROUTES = [
    ("GET", "api/admin/webhook-logs"),
    ("GET", "api/admin/webhook-logs/1"),
    ("POST", "api/admin/webhook-logs/1/replay"),
    ("GET", "api/admin/webhook-stats"),
    ("POST", "api/admin/reconcile"),
    ("GET", "api/admin/sales/traffic"),
    ("GET", "api/admin/sales/referral"),
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


def raw_request(port: int, method: str, target: str, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    """One HTTP/1.1 request with the target sent byte for byte (no client normalises it)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
             "Content-Length: 0", *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    reply_headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        reply_headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), reply_headers, body


@pytest.fixture(scope="module")
def edge_port(make_database, tmp_path_factory) -> Iterator[int]:  # type: ignore[no-untyped-def]
    database = migrated_edge_database(make_database)
    port = free_port()
    env = {**os.environ, "EDGE_DATABASE_URL": database, "EDGE_PORT": str(port),
           "ADMIN_TOKEN": TOKEN, "EDGE_WORKERS": "1", "ROUTER_ADDR": "127.0.0.1:9",
           "REFERRAL_ADDR": "127.0.0.1:9", "TRAFFIC_ADDR": "127.0.0.1:9"}
    log = open(tmp_path_factory.mktemp("edge") / "edge.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "edge/gunicorn_conf.py", "edge.app:create_app()"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if raw_request(port, "GET", "/healthz", {})[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "edge did not start"
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


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
