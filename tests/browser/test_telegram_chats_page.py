"""The Telegram chats page, in Chromium, against the whole stack: a targetologist's group
that Telegram upgraded to a supergroup shows as "chat moved: update the rules" (and the
admin updates the rules from there), and a chat that removed the bot shows with the
reason, the count of failed sales and when. Screenshots go to test-artifacts/."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.harness import ADMIN_TOKEN, Services, Watched, needs_chromium
from tests.browser.test_admin_ui import assert_nothing_ran, screenshot, sign_in
from tests.support.fake_telegram import FakeTelegram
from tests.support.forms import encode, won_deal_body
from tests.support.stack import RULES_CHATS, start_stack
from tests.support.waiting import eventually

pytestmark = needs_chromium

# Kenesary's chat in the shipped rules, and the supergroup Telegram moves it to.
OLD_CHAT, NEW_CHAT = RULES_CHATS, "-1009876543210"
# The default chat (Aidana has no chat of her own): it removed the bot.
DEFAULT_CHAT = "-4005000009"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def services(make_database, tmp_path_factory) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    with FakeTelegram() as telegram:
        telegram.upgrade_to_supergroup(OLD_CHAT, NEW_CHAT)
        telegram.make_unreachable(DEFAULT_CHAT)
        running = start_stack(
            {n: make_database(n) for n in ("edge", "router", "referral", "traffic", "notifier")},
            tmp_path_factory.mktemp("stack"),
            ADMIN_TOKEN=ADMIN_TOKEN,
            TELEGRAM_API_URL=telegram.url,
            TELEGRAM_BOT_TOKEN="123456:browser-test-token",
            TELEGRAM_DEFAULT_CHAT_ID=DEFAULT_CHAT,
            AMOCRM_DOMAIN="onaiagencykz",
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


def _chats(services: Services) -> dict:
    reply = services.http.get("/api/admin/telegram/chats", headers=AUTH)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_the_page_shows_a_moved_chat_and_an_unreachable_one_and_updates_the_rules(
    page: Page, services: Services, watched: Watched, artifacts: Path
) -> None:
    services.webhook(encode(won_deal_body(9510001, "kenesary_fb")))
    services.webhook(encode(won_deal_body(9510002, "aidana_fb")))
    services.webhook(encode(won_deal_body(9510003, "aidana_fb")))
    settled = eventually(
        lambda: (lambda c: c if c["moves"] and c["unreachable"]
                 and c["unreachable"][0]["count"] == 2 else None)(_chats(services)),
        timeout=30,
    )
    assert settled, _chats(services)

    sign_in(page)
    page.get_by_role("link", name="Telegram chats").click()
    expect(page.get_by_role("heading", name="Telegram chats")).to_be_visible()
    moved = page.locator(f'#moves-rows tr[data-old-chat-id="{OLD_CHAT}"]')
    expect(moved).to_contain_text(NEW_CHAT)
    expect(moved).to_contain_text("chat moved: update the rules")
    expect(moved).to_contain_text(f"telegram_chat_id of Kenesary: {OLD_CHAT} → {NEW_CHAT}")
    unreachable = page.locator(f'#unreachable-rows tr[data-chat-id="{DEFAULT_CHAT}"]')
    expect(unreachable).to_contain_text("Forbidden: bot was kicked from the group chat")
    expect(unreachable.locator("td.num")).to_have_text("2")
    expect(unreachable.locator('td[data-label="Last seen"]')).not_to_have_text("—")
    screenshot(page, artifacts / "telegram-chats.png")

    moved.get_by_role("button", name="Update the rules").click()
    expect(page.locator("#chats-done")).to_contain_text(f"{OLD_CHAT} → {NEW_CHAT}")
    expect(moved).to_contain_text("Rules updated")
    rules = services.http.get("/api/admin/rules", headers=AUTH).json()
    assert f'telegram_chat_id: "{NEW_CHAT}"' in rules["yaml"]
    assert OLD_CHAT not in rules["yaml"]
    assert rules["author"] == "admin"
    assert_nothing_ran(watched)
