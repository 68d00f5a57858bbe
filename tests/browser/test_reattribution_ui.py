"""From a Review page suggestion to applied credits, in Chromium against the whole stack (the
worker running the job): the proposed rule change previewed over the logged sales (which
change hands, the totals before and after), applied with one button, the job's progress
shown until done, and the credits on the Traffic sales dashboard."""

import time
from pathlib import Path

from playwright.sync_api import Page, expect

from amoroute.v1 import traffic_pb2
from tests.browser.harness import ADMIN_TOKEN, Services, Watched, needs_chromium
from tests.support.forms import encode, won_deal_body

pytestmark = needs_chromium


def test_a_suggestion_previewed_and_applied_credits_the_logged_sales(
    page: Page, services: Services, watched: Watched, artifacts: Path
) -> None:
    now = int(time.time())
    services.webhook(encode(
        won_deal_body(9700001, "Kenesary-FB", price=100_000, updated_at=now),
        won_deal_body(9700002, "kenesary fb", price=50_000, updated_at=now, index=1),
        won_deal_body(9700003, "kenesary_ig", price=7_000, updated_at=now, index=2),
    ))
    assert [s.targetologist for s in services.traffic.ListSales(
        traffic_pb2.ListSalesRequest(lead_id=9700001)).sales] == []

    page.goto("/admin/#/review")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    kenesary = page.locator('#review-groups tr.review-group[data-key="kenesary_fb"]')
    kenesary.get_by_role("button", name="Propose rule change").click()
    kenesary.get_by_role("button", name="Preview re-attribution").click()

    # The preview's counts first.
    expect(kenesary.locator(".reattribution-summary")).to_contain_text(
        "2 of 3 won deals in range change hands")
    totals = kenesary.locator(".reattribution-totals")
    expect(totals.locator('tr[data-party="traffic:Kenesary"] td[data-label=Before]')).to_have_text(
        "1 · 7,000")
    expect(totals.locator('tr[data-party="traffic:Kenesary"] td[data-label=After]')).to_have_text(
        "3 · 157,000")
    expect(totals.locator('tr[data-party="unknown"] td[data-label=Difference]')).to_have_text(
        "-2 · -150,000")
    page.screenshot(path=artifacts / "review-reattribution-preview.png", full_page=True)

    # Then the job's progress, until done.
    kenesary.get_by_role("button", name="Apply: re-attribute 2 deals").click()
    progress = page.locator(".reattribution-progress")
    expect(progress).to_have_attribute("data-state", "done", timeout=30_000)
    expect(progress).to_contain_text("rules version 1 → 2, by admin")
    expect(progress).to_contain_text("2 of 2 re-routed — 2 credited, 0 re-attributed, 0 withdrawn")
    page.screenshot(path=artifacts / "review-reattribution-applied.png", full_page=True)

    # The credits on the dashboard.
    page.goto("/admin/#/traffic?all=1")
    row = page.locator("#traffic-body tr").filter(has_text="Kenesary")
    expect(row.locator("td[data-label=Sales]")).to_have_text("3")
    expect(row.locator("td[data-label=Revenue]")).to_have_text("157,000")
    assert watched.dialogs == [] and watched.page_errors == [] and watched.console_errors == []
