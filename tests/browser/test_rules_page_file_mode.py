"""The Rules page when the rules file is authoritative (ROUTING_RULES_SOURCE=file): the
rules are shown read-only, with the reason, and there is no stored history."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from router_svc.rules import DEFAULT_RULES_PATH
from tests.browser.harness import ADMIN_TOKEN, Services, Watched, needs_chromium
from tests.browser.test_admin_ui import assert_nothing_ran, screenshot, sign_in
from tests.support.stack import start_stack

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def services(make_database, tmp_path_factory) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    running = start_stack(
        {n: make_database(n) for n in ("edge", "router", "referral", "traffic", "notifier")},
        tmp_path_factory.mktemp("stack"),
        ADMIN_TOKEN=ADMIN_TOKEN,
        ROUTING_RULES_SOURCE="file",
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


def test_in_file_mode_the_rules_are_shown_read_only_with_the_reason(
    page: Page, services: Services, watched: Watched, artifacts: Path
) -> None:
    sign_in(page, "/admin/#/rules")
    expect(page.locator("#rules-meta")).to_contain_text("From the file")
    expect(page.locator("#rules-meta")).to_contain_text(str(DEFAULT_RULES_PATH))
    reason = page.locator("#rules-read-only")
    expect(reason).to_be_visible()
    expect(reason).to_contain_text("ROUTING_RULES_SOURCE=file")
    editor = page.get_by_label("Rules (YAML)")
    expect(editor).to_have_value(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    expect(editor).not_to_be_editable()
    expect(page.get_by_role("button", name="Save")).to_be_hidden()
    expect(page.get_by_label("Comment")).to_be_hidden()
    expect(page.locator("#rules-history li")).to_have_count(0)
    expect(page.locator("#rules-history-empty")).to_contain_text("history is in git")
    screenshot(page, artifacts / "admin-rules-file-mode.png")
    assert_nothing_ran(watched)
