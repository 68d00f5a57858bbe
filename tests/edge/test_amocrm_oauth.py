"""AmoCRM OAuth 2.0 (issue #25, point 1), against the stand-in AmoCRM as a real HTTP server
and a real database (PostgreSQL, or SQLite with AMOROUTE_TEST_DB=sqlite): connecting through
the callback, the bootstrap refresh token, rotation before expiry and on 401, one refresh
across processes, invalid_grant, and tokens that never show."""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import falcon.testing
import prometheus_client
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from amoroute.db import create_engine
from amoroute.timeutil import now
from edge.amocrm_api import AmoCrmClient
from edge.amocrm_connect import STATE_COOKIE
from edge.amocrm_tokens import REFRESH_MARGIN, AmoCrmTokens, NeedsReconnect, build_tokens
from edge.app import create_app
from edge.settings import Settings
from tests.admin.helpers import AUTH, TOKEN, migrated_edge_database
from tests.support.fake_amocrm import AMOCRM_HOST, FakeAmoCrm

KEY = Fernet.generate_key().decode()
LEAD_ID = 24681357  # a fixture lead of the stand-in


@pytest.fixture
def amocrm() -> Iterator[FakeAmoCrm]:
    with FakeAmoCrm() as fake:
        yield fake


@pytest.fixture
def database(make_database) -> str:  # type: ignore[no-untyped-def]
    return migrated_edge_database(make_database)


def oauth_settings(fake: FakeAmoCrm, database: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "edge_database_url": database,
        "admin_token": TOKEN,
        "router_addr": "127.0.0.1:9",
        "referral_addr": "127.0.0.1:9",
        "traffic_addr": "127.0.0.1:9",
        "amocrm_domain": "onaiagencykz",
        "amocrm_api_url": fake.url,
        "amocrm_client_id": fake.client_id,
        "amocrm_client_secret": fake.client_secret,
        "amocrm_redirect_uri": fake.redirect_uri,
        "amoroute_secret_key": KEY,
        **extra,
    }
    return Settings(**values)


def token_source(settings: Settings, clock: Callable[[], datetime] = now) -> AmoCrmTokens:
    """A process's token store: its own engine, as another replica would have."""
    tokens = build_tokens(settings, create_engine(settings.edge_database_url), clock)
    assert tokens is not None
    return tokens


def api(fake: FakeAmoCrm, tokens: AmoCrmTokens) -> AmoCrmClient:
    return AmoCrmClient(fake.url, tokens, public_host=AMOCRM_HOST, sleep=lambda s: None)


def connect_link(client: falcon.testing.TestClient) -> tuple[str, dict[str, str]]:
    """The state of the admin's "Connect AmoCRM" link, and the cookies the browser keeps."""
    answer = client.simulate_get("/api/admin/amocrm", headers=AUTH)
    state = parse_qs(urlsplit(answer.json["authorize_url"]).query)["state"][0]
    return state, {name: cookie.value for name, cookie in answer.cookies.items()}


def connect(client: falcon.testing.TestClient, fake: FakeAmoCrm) -> falcon.testing.Result:
    """What the account owner's browser does: follow the admin's link, come back with a code."""
    state, cookies = connect_link(client)
    return client.simulate_get(
        "/oauth/amocrm/callback",
        params={"code": fake.issue_code(), "referer": AMOCRM_HOST, "state": state},
        cookies=cookies,
    )


def stored_row(database: str) -> dict[str, Any]:
    engine = create_engine(database)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM amocrm_tokens")).mappings().one()
    engine.dispose()
    return dict(row)


def bearer_of_last_api_call(fake: FakeAmoCrm) -> str:
    calls = [r for r in fake.requests if r.path.startswith("/api/")]
    return calls[-1].headers["authorization"].removeprefix("Bearer ")


def refreshes(fake: FakeAmoCrm) -> list[int]:
    return [status for grant, status in fake.grants if grant == "refresh_token"]


def test_the_callback_stores_the_tokens_encrypted_and_the_api_uses_them(
    amocrm: FakeAmoCrm, database: str
) -> None:
    settings = oauth_settings(amocrm, database)
    client = falcon.testing.TestClient(create_app(settings))
    before = client.simulate_get("/api/admin/amocrm", headers=AUTH).json
    assert before["status"] == "not_connected"
    assert before["authorize_url"].startswith("https://www.amocrm.ru/oauth?client_id=")

    answer = connect(client, amocrm)

    assert answer.status_code == 303 and answer.headers["location"] == "/admin/"
    assert amocrm.grants == [("authorization_code", 200)]
    [access] = amocrm.access_tokens
    row = stored_row(database)
    raw = " ".join(str(value) for value in row.values())
    assert access not in raw and "access-" not in raw and "refresh-" not in raw
    assert Fernet(KEY).decrypt(row["access_token"].encode()).decode() == access
    assert client.simulate_get("/api/admin/amocrm", headers=AUTH).json["status"] == "connected"
    with api(amocrm, token_source(settings)) as amo:
        assert [lead["id"] for lead in amo.get_leads([LEAD_ID])] == [LEAD_ID]
    assert bearer_of_last_api_call(amocrm) == access


@pytest.mark.parametrize(
    "state",
    [
        None,
        "forged",
        Fernet.generate_key().decode(),  # signed with another key
        Fernet(KEY).encrypt_at_time(b"amocrm-oauth-state", int(time.time()) - 7200).decode(),
    ],
    ids=["missing", "forged", "other-key", "expired"],
)
def test_a_bad_state_is_refused_and_nothing_is_stored(
    amocrm: FakeAmoCrm, database: str, state: str | None
) -> None:
    client = falcon.testing.TestClient(create_app(oauth_settings(amocrm, database)))
    params = {"code": amocrm.issue_code(), "referer": AMOCRM_HOST}
    if state is not None:
        params["state"] = state

    answer = client.simulate_get("/oauth/amocrm/callback", params=params)

    assert answer.status_code == 400
    assert answer.json["description"].startswith("state:")
    assert amocrm.grants == []
    with create_engine(database).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM amocrm_tokens")).scalar() == 0


def test_a_state_is_accepted_only_from_the_browser_given_it_and_only_once(
    amocrm: FakeAmoCrm, database: str
) -> None:
    client = falcon.testing.TestClient(create_app(oauth_settings(amocrm, database)))
    state, cookies = connect_link(client)
    other_state, _ = connect_link(client)
    params = {"referer": AMOCRM_HOST, "state": state}

    # A valid state copied out of the link (a log, a forwarded URL) into another browser.
    elsewhere = client.simulate_get(
        "/oauth/amocrm/callback", params={**params, "code": amocrm.issue_code()}
    )
    # The browser's own cookie, but the state of another link.
    mixed = client.simulate_get(
        "/oauth/amocrm/callback",
        params={**params, "state": other_state, "code": amocrm.issue_code()},
        cookies=cookies,
    )

    for refused in (elsewhere, mixed):
        assert refused.status_code == 400
        assert refused.json["description"].startswith("state: not the one this browser")
    assert amocrm.grants == []

    used = client.simulate_get(
        "/oauth/amocrm/callback", params={**params, "code": amocrm.issue_code()}, cookies=cookies
    )
    assert used.status_code == 303
    # The browser drops the state's cookie: the same link cannot connect again.
    cleared = used.cookies[STATE_COOKIE]
    assert cleared.value == "" and cleared.path == "/oauth/amocrm/callback"
    assert cleared.max_age == 0 or (
        cleared.expires is not None and cleared.expires < datetime.now(UTC)
    )
    assert amocrm.grants == [("authorization_code", 200)]


def test_the_bootstrap_refresh_token_is_used_once_and_a_restart_keeps_the_stored_one(
    amocrm: FakeAmoCrm, database: str
) -> None:
    settings = oauth_settings(amocrm, database, amocrm_refresh_token=amocrm.issue_refresh_token())
    with api(amocrm, token_source(settings)) as amo:
        amo.get_leads([LEAD_ID])
    assert refreshes(amocrm) == [200]

    amocrm.expire_access_tokens()
    with api(amocrm, token_source(settings)) as restarted:  # same settings, new process
        restarted.get_leads([LEAD_ID])

    assert refreshes(amocrm) == [200, 200]  # the stored token, not the spent setting
    assert bearer_of_last_api_call(amocrm) == amocrm.access_tokens[-1]


def test_the_token_is_refreshed_before_it_expires(amocrm: FakeAmoCrm, database: str) -> None:
    settings = oauth_settings(amocrm, database, amocrm_refresh_token=amocrm.issue_refresh_token())
    offset = [timedelta(0)]
    tokens = token_source(settings, clock=lambda: now() + offset[0])
    with api(amocrm, tokens) as amo:
        amo.get_leads([LEAD_ID])
        first = bearer_of_last_api_call(amocrm)
        offset[0] = timedelta(seconds=amocrm.access_ttl_s) - REFRESH_MARGIN + timedelta(seconds=1)
        amo.get_leads([LEAD_ID])

    assert refreshes(amocrm) == [200, 200]
    assert bearer_of_last_api_call(amocrm) != first
    assert all(r.status != 401 for r in amocrm.requests)  # renewed before AmoCRM refused it


def test_a_401_refreshes_once_and_the_call_goes_through(
    amocrm: FakeAmoCrm, database: str
) -> None:
    settings = oauth_settings(amocrm, database, amocrm_refresh_token=amocrm.issue_refresh_token())
    with api(amocrm, token_source(settings)) as amo:
        amo.get_leads([LEAD_ID])
        amocrm.expire_access_tokens()  # AmoCRM dropped it early: only a 401 tells
        assert [lead["id"] for lead in amo.get_leads([LEAD_ID])] == [LEAD_ID]

    assert [r.status for r in amocrm.requests if r.path.startswith("/api/")] == [200, 401, 200]
    assert refreshes(amocrm) == [200, 200]


def test_processes_needing_a_refresh_at_once_refresh_once_and_share_the_token(
    amocrm: FakeAmoCrm, database: str
) -> None:
    settings = oauth_settings(amocrm, database, amocrm_refresh_token=amocrm.issue_refresh_token())
    clients = [api(amocrm, token_source(settings)) for _ in range(4)]  # an engine each
    for client in clients:
        client.get_leads([LEAD_ID])
    amocrm.expire_access_tokens()
    amocrm.grant_delay_s = 0.3  # every one of them gets its 401 while the refresh runs
    start, errors, used = threading.Barrier(len(clients)), [], []

    def call(client: AmoCrmClient) -> None:
        start.wait()
        try:
            client.get_leads([LEAD_ID])
            used.append(client._token)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for client in clients:
        client.close()

    assert errors == []
    assert refreshes(amocrm) == [200, 200]  # the bootstrap, then exactly one
    assert set(used) == set(amocrm.access_tokens)
    assert len(set(used)) == 1


def test_invalid_grant_stops_api_calls_and_says_so_until_reconnected(
    amocrm: FakeAmoCrm, database: str
) -> None:
    settings = oauth_settings(amocrm, database)
    client = falcon.testing.TestClient(create_app(settings))
    connect(client, amocrm)
    amocrm.revoke_refresh_tokens()
    amocrm.expire_access_tokens()
    tokens = token_source(settings)

    with api(amocrm, tokens) as amo:
        with pytest.raises(NeedsReconnect, match="reconnect AmoCRM"):
            amo.get_leads([LEAD_ID])
        asked = len(amocrm.requests)
        with pytest.raises(NeedsReconnect):
            amo.get_leads([LEAD_ID])
        assert len(amocrm.requests) == asked  # stopped: AmoCRM is not asked again

    assert refreshes(amocrm) == [400]
    status = client.simulate_get("/api/admin/amocrm", headers=AUTH).json
    assert status["status"] == "needs_reconnect" and "invalid_grant" in status["problem"]
    ready = client.simulate_get("/readyz").json
    assert ready["details"]["amocrm"].startswith("needs reconnect")
    assert prometheus_client.REGISTRY.get_sample_value(
        "amoroute_amocrm_oauth_needs_reconnect"
    ) == 1

    assert connect(client, amocrm).status_code == 303  # "reconnect AmoCRM"
    assert client.simulate_get("/api/admin/amocrm", headers=AUTH).json["status"] == "connected"
    with api(amocrm, tokens) as amo:
        assert [lead["id"] for lead in amo.get_leads([LEAD_ID])] == [LEAD_ID]
    assert prometheus_client.REGISTRY.get_sample_value(
        "amoroute_amocrm_oauth_needs_reconnect"
    ) == 0


def test_tokens_never_show_in_logs_or_answers(
    amocrm: FakeAmoCrm, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bootstrap = amocrm.issue_refresh_token()
    settings = oauth_settings(amocrm, database, amocrm_refresh_token=bootstrap)
    client = falcon.testing.TestClient(create_app(settings))
    answers = [connect(client, amocrm).text]
    with api(amocrm, token_source(settings)) as amo:
        amo.get_leads([LEAD_ID])
        amocrm.expire_access_tokens()
        amo.get_leads([LEAD_ID])
        amocrm.revoke_refresh_tokens()
        amocrm.expire_access_tokens()
        with pytest.raises(NeedsReconnect) as refused:
            amo.get_leads([LEAD_ID])
    answers += [
        client.simulate_get("/api/admin/amocrm", headers=AUTH).text,
        client.simulate_get("/readyz").text,
        str(refused.value),
        repr(settings),
        str(settings.model_dump()),
    ]
    issued = {r.headers["authorization"].removeprefix("Bearer ") for r in amocrm.requests
              if "authorization" in r.headers}
    secrets = issued | {bootstrap, amocrm.client_secret, KEY}
    assert len(issued) >= 2
    text = caplog.text + "\n".join(answers)
    assert [s for s in secrets if s in text] == []


def test_a_callback_without_oauth_configured_is_not_found(database: str) -> None:
    client = falcon.testing.TestClient(create_app(Settings(
        edge_database_url=database, admin_token=TOKEN, router_addr="127.0.0.1:9")))
    answer = client.simulate_get("/oauth/amocrm/callback", params={"code": "c", "state": "s"})
    assert answer.status_code == 404
    assert client.simulate_get("/api/admin/amocrm", headers=AUTH).json["status"] == "off"

