"""Connecting AmoCRM by OAuth from the admin, in Chromium, against the whole stack and the
stand-in AmoCRM: the page offers "Connect AmoCRM"; once the account owner comes back through
the callback with a code, the page says AmoCRM is connected, and the edge's API calls use
the stored token."""

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.fernet import Fernet
from playwright.sync_api import Page, expect

from tests.browser.harness import ADMIN_TOKEN, Services, Watched, needs_chromium
from tests.support.fake_amocrm import AMOCRM_HOST, FakeAmoCrm
from tests.support.stack import start_stack

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def amocrm() -> Iterator[FakeAmoCrm]:
    with FakeAmoCrm() as fake:
        yield fake


@pytest.fixture(scope="module")
def services(make_database, tmp_path_factory, amocrm: FakeAmoCrm) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    running = start_stack(
        {n: make_database(n) for n in ("edge", "router", "referral", "traffic", "notifier")},
        tmp_path_factory.mktemp("stack"),
        ADMIN_TOKEN=ADMIN_TOKEN,
        AMOCRM_DOMAIN="onaiagencykz",
        AMOCRM_API_URL=amocrm.url,
        AMOCRM_CLIENT_ID=amocrm.client_id,
        AMOCRM_CLIENT_SECRET=amocrm.client_secret,
        AMOCRM_REDIRECT_URI=amocrm.redirect_uri,
        AMOROUTE_SECRET_KEY=Fernet.generate_key().decode(),
    )
    try:
        services = Services(running)
    except BaseException:
        running.stack.stop()
        raise
    try:
        yield services
    finally:
        services.close()
        running.stack.stop()


def test_an_admin_connects_amocrm_from_the_page(
    page: Page, services: Services, watched: Watched, amocrm: FakeAmoCrm
) -> None:
    page.goto("/admin/")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()

    block = page.locator("#amocrm-status")
    expect(block).to_contain_text("AmoCRM is not connected")
    link = block.get_by_role("link", name="Connect AmoCRM")
    href = link.get_attribute("href") or ""
    assert href.startswith("https://www.amocrm.ru/oauth?client_id=")

    # What AmoCRM does once the owner grants access: back to the redirect URI with a code.
    state = parse_qs(urlsplit(href).query)["state"][0]
    page.goto(
        f"/oauth/amocrm/callback?code={amocrm.issue_code()}&referer={AMOCRM_HOST}&state={state}"
    )

    expect(page).to_have_url(f"{services.running.edge_url}/admin/")
    expect(block).to_contain_text("AmoCRM connected (OAuth).")
    expect(block.get_by_role("link")).to_have_count(0)
    assert amocrm.grants == [("authorization_code", 200)]
    reconciled = services.http.post(
        "/api/admin/reconcile", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert reconciled.status_code == 200, reconciled.text
    api_calls = [r for r in amocrm.requests if r.path.startswith("/api/v4/")]
    assert api_calls and {r.status for r in api_calls} <= {200, 204}  # 204: nothing matched
    assert {r.headers["authorization"] for r in api_calls} == {
        f"Bearer {token}" for token in amocrm.access_tokens
    }
    assert (watched.dialogs, watched.page_errors, watched.console_errors) == ([], [], [])
