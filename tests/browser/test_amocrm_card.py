"""The AmoCRM card in Chromium, against the whole stack (gunicorn edge, worker, services) and the
stand-in AmoCRM: the worker finds the webhook disabled, the card says so with the invalid
answers of the last 2 hours (also the worker's metric), and "Re-enable the webhook" registers
it again and reconciles, after which the card shows it enabled."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from edge.hook_health import HOOK_EVENTS
from tests.browser.harness import ADMIN_TOKEN, Services, Watched, needs_chromium
from tests.browser.test_admin_ui import screenshot
from tests.support.fake_amocrm import FakeAmoCrm
from tests.support.stack import start_stack
from tests.support.waiting import eventually

pytestmark = needs_chromium

AMOCRM_TOKEN = "amocrm-card-token"
HOOK_URL = "https://amoroute.example/webhook/amocrm/long-random-secret"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def amocrm() -> Iterator[FakeAmoCrm]:
    with FakeAmoCrm(token=AMOCRM_TOKEN) as fake:
        fake.disable_webhooks()
        yield fake


@pytest.fixture(scope="module")
def services(make_database, tmp_path_factory, amocrm: FakeAmoCrm) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    running = start_stack(
        {n: make_database(n) for n in ("edge", "router", "referral", "traffic", "notifier")},
        tmp_path_factory.mktemp("stack"),
        ADMIN_TOKEN=ADMIN_TOKEN,
        AMOCRM_DOMAIN="onaiagencykz",
        AMOCRM_API_URL=amocrm.url,
        AMOCRM_ACCESS_TOKEN=AMOCRM_TOKEN,
        WORKER_POLL_S="0.2",
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


def card(services: Services) -> dict[str, Any]:
    reply = services.http.get("/api/admin/amocrm", headers=AUTH)
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


def worker_metric(services: Services) -> str:
    port = services.running.stack.metrics_ports["edge.worker"]
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text


def test_the_card_shows_a_disabled_hook_and_re_enables_it(
    page: Page, services: Services, watched: Watched, amocrm: FakeAmoCrm, artifacts: Path
) -> None:
    # Answers AmoCRM counts invalid, on both gunicorn workers' share: a wrong path, not a form.
    for _ in range(2):
        assert services.http.post("/webhook/amocrm/wrong", content=b"x=1", headers={
            "Content-Type": "application/x-www-form-urlencoded"}).status_code == 404
    assert services.http.post("/webhook/amocrm", content=b"{}", headers={
        "Content-Type": "application/json"}).status_code == 415
    # The worker's first reconciliation pass finds the hook disabled.
    found = eventually(lambda: card(services)["webhook"]["state"] == "disabled", timeout=60)
    assert found, card(services)
    assert eventually(lambda: card(services)["invalid_answers_2h"]["total"] == 3, timeout=30)
    metric = eventually(
        lambda: 'amoroute_webhook_invalid_answers_2h{cause="404"} 2.0' in worker_metric(services),
        timeout=60,
    )
    assert metric, worker_metric(services)
    assert 'amoroute_webhook_invalid_answers_2h{cause="415"} 1.0' in worker_metric(services)

    page.goto("/admin/")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()

    block = page.locator("#amocrm-status")
    expect(block).to_contain_text("AmoCRM API: a long-lived token")
    expect(block).to_contain_text("onaiagencykz.amocrm.ru")
    expect(block).to_contain_text("DISABLED by AmoCRM")
    expect(block).to_contain_text("3 of AmoCRM's 100 (404: 2, 415: 1)")
    expect(block).to_contain_text("won deals seen")
    screenshot(page, artifacts / "amocrm-card-disabled.png")
    block.get_by_role("button", name="Re-enable the webhook").click()

    expect(block).to_contain_text("Webhook registered again")
    expect(block.locator("dd", has_text="enabled")).to_have_count(1)
    expect(block).not_to_contain_text("DISABLED")
    expect(block.get_by_role("button", name="Re-enable the webhook")).to_have_count(0)
    screenshot(page, artifacts / "amocrm-card-re-enabled.png")
    ours = [hook for hook in amocrm.webhooks if hook["destination"] == HOOK_URL]
    assert len(ours) == 1 and ours[0]["disabled"] is False
    assert ours[0]["settings"] == list(HOOK_EVENTS)
    assert (watched.dialogs, watched.page_errors, watched.console_errors) == ([], [], [])


def test_the_rules_editor_offers_pipelines_statuses_and_fields_by_name(
    page: Page, services: Services, watched: Watched, artifacts: Path
) -> None:
    page.goto("/admin/")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Rules").click()
    catalog = page.locator("#amocrm-catalog")
    expect(catalog).to_contain_text("Click an entry")
    expect(catalog.locator("#amocrm-pipelines")).to_contain_text("Продажи")
    expect(catalog.locator("#amocrm-fields")).to_contain_text("utm_source (UTM_SOURCE)")
    editor = page.get_by_label("Rules (YAML)")
    expect(editor).not_to_have_value("")
    yaml = editor.input_value()
    # The cursor at the start of the editor, then the won status of the second pipeline.
    editor.focus()
    editor.press("Control+Home")
    catalog.get_by_role(
        "button", name="Insert 142, status Успешно реализовано of Партнёры"
    ).click()
    expect(editor).to_have_value("142" + yaml)
    catalog.get_by_role("button", name="Insert 1402007, custom field utm_source").click()
    expect(editor).to_have_value("1421402007" + yaml)
    screenshot(page, artifacts / "rules-amocrm-catalog.png")
    assert (watched.dialogs, watched.page_errors, watched.console_errors) == ([], [], [])
