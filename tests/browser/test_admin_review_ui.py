"""The Review page in Chromium against the whole stack: unknown sales with drifted sources
grouped, the most revenue first, each with who it most likely belongs to and the proposed
rule change shown as a diff and saved as the next rules version; a group marked not
attributable leaves the queue."""

import dataclasses
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.harness import ADMIN_TOKEN, Services, Watched, needs_chromium
from tests.support.forms import encode, won_deal_body

pytestmark = needs_chromium


@dataclasses.dataclass(frozen=True)
class Seeded:
    kenesary: list[int]  # log ids of the "kenesary_fb" group's sales


@pytest.fixture(scope="module")
def seeded(services: Services) -> Seeded:
    now = int(time.time())
    # A conversion makes REVIEW7 a code referral_svc knows.
    services.webhook(encode(won_deal_body(9600000, "ref_REVIEW7", price=1000, updated_at=now)))
    first = services.webhook(encode(won_deal_body(9600001, "Kenesary-FB", price=100000,
                                                  updated_at=now)))
    second = services.webhook(encode(won_deal_body(9600002, "kenesary fb", price=50000,
                                                   updated_at=now)))
    services.webhook(encode(
        won_deal_body(9600003, "kenesry_fb", price=30000, updated_at=now),
        won_deal_body(9600004, "REF-review7 ", price=20000, updated_at=now, index=1),
        won_deal_body(9600005, "google", price=10000, updated_at=now, index=2),
    ))
    return Seeded(first + second)


def open_review(page: Page) -> None:
    page.goto("/admin/#/review")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#review-view")).to_be_visible()


def group(page: Page, key: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#review-groups tr.review-group[data-key="{key}"]')


def test_the_review_page_shows_groups_by_revenue_with_the_suggestion_and_its_diff(
    page: Page, seeded: Seeded, watched: Watched, artifacts: Path
) -> None:
    open_review(page)
    rows = page.locator("#review-groups tr.review-group")
    expect(rows).to_have_count(4)
    assert [rows.nth(i).get_attribute("data-key") for i in range(4)] == [
        "kenesary_fb", "kenesry_fb", "ref_review7", "google"]
    kenesary = group(page, "kenesary_fb")
    expect(kenesary.locator("td[data-label=Revenue]")).to_have_text("150,000")
    expect(kenesary.locator("td[data-label=Sales]")).to_have_text("2")
    expect(kenesary.locator(".variants")).to_contain_text("“Kenesary-FB”")
    expect(kenesary.locator(".variants")).to_contain_text("“kenesary fb”")
    expect(kenesary.locator(".suggested")).to_contain_text("Kenesary")
    expect(kenesary.locator(".why")).to_contain_text("only in case, separators or spaces")
    expect(kenesary.locator(".review-suggestion")).not_to_contain_text("null")
    expect(group(page, "kenesry_fb").locator(".why")).to_contain_text(
        "1 typo away from pattern 'kenesary_*'")
    expect(group(page, "ref_review7").locator(".suggested")).to_contain_text("REVIEW7")
    expect(group(page, "google").locator(".review-suggestion")).to_contain_text("Nobody close.")
    expect(page.locator("#review-summary")).to_contain_text("5 unknown sales, revenue 210,000")

    kenesary.get_by_role("button", name="Propose rule change").click()
    diff = kenesary.locator("pre.diff")
    expect(diff).to_be_visible()
    expect(diff.locator(".add")).to_have_text(["+    - kenesary-fb\n", "+    - kenesary fb\n"])
    expect(kenesary.locator(".proposal")).to_contain_text(
        "Comment: Review: credit 'kenesary_fb' to Kenesary")
    page.screenshot(path=artifacts / "review.png", full_page=True)
    kenesary.get_by_role("button", name="Save this change").click()
    expect(kenesary.locator(".proposal-result")).to_contain_text("Saved as rules version 2")
    # Reloaded against version 2: the spellings are credited now, their sales need a replay.
    expect(kenesary.locator(".review-suggestion")).to_contain_text(
        "The current rules already credit these sales", timeout=15_000)
    expect(page.locator("#review-summary")).to_contain_text("rules version 2")

    # A lead links to its logged event.
    kenesary.locator(".lead-links a", has_text="9600001").click()
    expect(page.locator("#logs-view")).to_be_visible()
    expect(page.locator(f'#logs-body tr.log[data-log-id="{seeded.kenesary[0]}"]')).to_be_visible()
    assert watched.dialogs == [] and watched.page_errors == [] and watched.console_errors == []


def test_a_group_marked_not_attributable_leaves_the_queue_until_put_back(
    page: Page, seeded: Seeded, watched: Watched
) -> None:
    open_review(page)
    google = group(page, "google")
    google.get_by_role("button", name="Not attributable…").click()
    google.get_by_label("Why is it not attributable?").fill("organic search")
    google.get_by_role("button", name="Mark not attributable").click()
    expect(google).to_have_count(0)
    expect(page.locator("#review-groups tr.review-group")).to_have_count(3)

    page.get_by_label("Show not attributable").check()
    page.locator("#review-range").get_by_role("button", name="Show").click()
    expect(google.locator(".dismissed")).to_have_text("Not attributable: organic search")
    google.get_by_role("button", name="Put back in the queue").click()
    expect(google.locator(".dismissed")).to_have_count(0)
    expect(google.get_by_role("button", name="Not attributable…")).to_be_visible()
    assert watched.dialogs == [] and watched.page_errors == [] and watched.console_errors == []
