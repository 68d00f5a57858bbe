"""Named admins (ADMIN_TOKENS beside ADMIN_TOKEN): each signs in with their own token, the
name reaches the request and the log line of every admin write, a token never does, and a
bad entry stops the edge at start, named, without quoting a token."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import falcon
import pytest
from pydantic import ValidationError

from edge.access import admin_of
from edge.admin_tokens import AdminTokens
from edge.settings import Settings
from tests.admin.helpers import TOKEN, admin_client, migrated_edge_database
from tests.support.edge_server import raw_request, running_edge
from tests.support.stack import REPO, free_port

ALICE = "alice-token-0123456789abcdef0123456789"
BOB = "bob-token-fedcba9876543210fedcba98765"
NAMED = f"alice:{ALICE}, bob.ops:{BOB}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class WhoAmI:
    """Answers with the signed-in admin's name, as a resource that records it would."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"admin": admin_of(req)}

    on_post = on_get


@pytest.fixture(scope="module")
def database(make_database) -> str:  # type: ignore[no-untyped-def]
    return migrated_edge_database(make_database)


def test_each_named_token_and_admin_token_sign_in_as_their_admin(database: str) -> None:
    client = admin_client(database, admin_tokens=NAMED)
    client.app.add_route("/api/admin/whoami", WhoAmI())
    for token, name in ((ALICE, "alice"), (BOB, "bob.ops"), (TOKEN, "admin")):
        reply = client.simulate_get("/api/admin/whoami", headers=bearer(token))
        assert reply.status_code == 200, name
        assert reply.json == {"admin": name}
        assert client.simulate_get("/api/admin/webhook-stats",
                                   headers=bearer(token)).status_code == 200


@pytest.mark.parametrize("token", [ALICE[:-1], ALICE + "x", ALICE.upper(), f"alice:{ALICE}",
                                   "alice", BOB[::-1], ""])
def test_a_wrong_token_signs_in_as_nobody(database: str, token: str) -> None:
    client = admin_client(database, admin_tokens=NAMED)
    client.app.add_route("/api/admin/whoami", WhoAmI())
    reply = client.simulate_get("/api/admin/whoami", headers=bearer(token))
    assert reply.status_code == 401
    assert "admin" not in (reply.json or {})


def test_named_tokens_work_without_admin_token(database: str) -> None:
    client = admin_client(database, admin_token="", admin_tokens=NAMED)
    client.app.add_route("/api/admin/whoami", WhoAmI())
    assert client.simulate_get("/api/admin/whoami", headers=bearer(BOB)).json == {
        "admin": "bob.ops"}
    assert client.simulate_get("/api/admin/whoami", headers=bearer(TOKEN)).status_code == 401
    assert client.simulate_get("/admin/").status_code == 200


# --- refused at start ----------------------------------------------------------------------

LONG = "z" * 32


@pytest.mark.parametrize(("named", "single", "named_in_error"), [
    (f"alice:{LONG},", "", "ADMIN_TOKENS entry 2 is empty"),
    (f"alice{LONG}", "", "ADMIN_TOKENS entry 1 has no name or no token"),
    (f":{LONG}", "", "ADMIN_TOKENS entry 1 has no name or no token"),
    ("alice:", "", "ADMIN_TOKENS entry 1 has no name or no token"),
    (f"al ice:{LONG}", "", "ADMIN_TOKENS entry 1: the name before the colon must be 1 to 32"),
    (f"{'n' * 33}:{LONG}", "", "ADMIN_TOKENS entry 1: the name before the colon must be 1 to 32"),
    (f"alice:{LONG},bob:short-secret-token", "",
     "ADMIN_TOKENS entry 2 ('bob'): the token must be at least 32 characters (is 18)"),
    (f"alice:{LONG},alice:{'y' * 32}", "", "ADMIN_TOKENS entry 2 ('alice') names 'alice' a second"),
    (f"alice:{LONG},bob:{LONG}", "", "ADMIN_TOKENS entry 2 ('bob') reuses the token of 'alice'"),
    (f"bob:{LONG}", LONG, "ADMIN_TOKENS entry 1 ('bob') reuses the token of ADMIN_TOKEN"),
    (f"admin:{LONG}", "y" * 32, "ADMIN_TOKENS entry 1 ('admin'): 'admin' is the name of ADMIN_TOKEN"),
])
def test_a_bad_entry_is_refused_at_start_named_and_no_token_quoted(
    named: str, single: str, named_in_error: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(admin_tokens=named, admin_token=single)
    message = str(refused.value)
    assert named_in_error in message
    for secret in (LONG, "y" * 32, "short-secret-token", f"alice{LONG}"):
        assert secret not in message


def test_admin_can_be_a_named_admin_when_admin_token_is_unset() -> None:
    admins = Settings(admin_tokens=f"admin:{LONG}").admins()
    assert admins.admin_of(LONG) == "admin"


def test_every_admin_token_is_a_secret_to_redact_and_none_is_shown() -> None:
    settings = Settings(admin_token=TOKEN, admin_tokens=NAMED)
    assert {TOKEN, ALICE, BOB} <= set(settings.secret_values())
    for shown in (repr(settings), str(settings.model_dump()), settings.model_dump_json(),
                  repr(settings.admins())):
        assert ALICE not in shown and BOB not in shown and TOKEN not in shown
    assert repr(settings.admins()) == "AdminTokens(admins=['admin', 'alice', 'bob.ops'])"


def test_a_token_is_matched_whole_never_by_prefix() -> None:
    admins = AdminTokens.parse(f"a:{LONG},b:{LONG}b")
    assert admins.admin_of(LONG) == "a"
    assert admins.admin_of(LONG + "b") == "b"
    assert admins.admin_of(LONG[:-1]) is None


def test_the_real_edge_refuses_to_start_and_names_the_entry(
    make_database, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    env = {**os.environ, "EDGE_DATABASE_URL": migrated_edge_database(make_database),
           "EDGE_PORT": str(free_port()), "EDGE_WORKERS": "1",
           "ADMIN_TOKENS": f"alice:{ALICE},bob:short-secret-token"}
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "edge/gunicorn_conf.py", "edge.app:create_app()"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "ADMIN_TOKENS entry 2 ('bob'): the token must be at least 32 characters" in output
    assert ALICE not in output and "short-secret-token" not in output


# --- through the real edge: the write's log line names the admin -----------------------------


@pytest.fixture(scope="module")
def edge(make_database, tmp_path_factory) -> Iterator[tuple[int, Path]]:  # type: ignore[no-untyped-def]
    output = tmp_path_factory.mktemp("edge") / "edge.log"
    env = {"EDGE_DATABASE_URL": migrated_edge_database(make_database), "ADMIN_TOKEN": TOKEN,
           "ADMIN_TOKENS": NAMED, "ROUTER_ADDR": "127.0.0.1:9", "REFERRAL_ADDR": "127.0.0.1:9",
           "TRAFFIC_ADDR": "127.0.0.1:9", "LOG_LEVEL": "INFO"}
    with running_edge(env, output) as port:
        yield port, output


def log_lines(output: Path, message: str, count: int) -> list[dict]:
    """The edge's JSON log lines with this message, once `count` of them are written."""
    deadline = time.monotonic() + 10
    while True:
        lines = []
        for line in output.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("msg") == message:
                lines.append(entry)
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def test_an_admin_write_is_logged_with_the_admins_name_and_no_token(
    edge: tuple[int, Path]
) -> None:
    port, output = edge
    assert raw_request(port, "GET", "/api/admin/webhook-stats", bearer(BOB))[0] == 200
    status, _, _ = raw_request(port, "POST", "/api/admin/webhook-logs/987654/replay",
                               bearer(BOB))
    assert status == 404
    status, _, _ = raw_request(port, "POST", "/api/admin/webhook-logs/987655/replay",
                               bearer(ALICE))
    assert status == 404
    # A refused write names nobody: there is no admin to name.
    assert raw_request(port, "POST", "/api/admin/reconcile", bearer("nobody"))[0] == 401
    writes = log_lines(output, "admin write", 2)
    assert [(w["admin"], w["method"], w["route"], w["params"], w["status"]) for w in writes] == [
        ("bob.ops", "POST", "/api/admin/webhook-logs/{log_id:int}/replay",
         {"log_id": 987654}, "404 Not Found"),
        ("alice", "POST", "/api/admin/webhook-logs/{log_id:int}/replay",
         {"log_id": 987655}, "404 Not Found"),
    ]
    text = output.read_text(errors="replace")
    for token in (ALICE, BOB, TOKEN):
        assert token not in text
