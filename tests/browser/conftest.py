"""Fixtures of the admin UI browser tests: the whole stack started for real, as tests/e2e
does (with ADMIN_TOKEN set), one Chromium per module, and a fresh watched page per test."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Browser, Page, sync_playwright

from router_svc.rules import DEFAULT_RULES_PATH
from tests.browser.harness import (
    ADMIN_TOKEN,
    ALICE_TOKEN,
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    XSS_TARGETOLOGIST,
    Services,
    Watched,
    open_page,
)
from tests.support.fake_telegram import FakeTelegram
from tests.support.stack import start_stack


@pytest.fixture(scope="module")
def services(make_database, tmp_path_factory) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    # The shipped rules plus a targetologist whose name is markup: the dashboards must
    # show it as text.
    rules = yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    rules["traffic"]["targetologists"].append({"name": XSS_TARGETOLOGIST, "patterns": ["xss_*"]})
    rules_file = tmp_path_factory.mktemp("rules") / "routing_rules.yaml"
    rules_file.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    with FakeTelegram() as telegram:
        running = start_stack(
            {n: make_database(n) for n in ("edge", "router", "referral", "traffic", "notifier")},
            tmp_path_factory.mktemp("stack"),
            ADMIN_TOKEN=ADMIN_TOKEN,
            ADMIN_TOKENS=f"alice:{ALICE_TOKEN}",
            TELEGRAM_API_URL=telegram.url,
            TELEGRAM_BOT_TOKEN="123456:browser-test-token",
            AMOCRM_DOMAIN="onaiagencykz",
            ROUTING_RULES=str(rules_file),
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


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def watched() -> Watched:
    return Watched()


@pytest.fixture
def page(browser: Browser, services: Services, watched: Watched) -> Iterator[Page]:
    page = open_page(browser, services, watched, viewport={"width": 1366, "height": 900})
    yield page
    page.context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
