"""The traffic dashboard's revenue-per-day chart in Chromium, against the whole stack:
one point per day of the range, one line per targetologist; a row opens onto its sales. Screenshot in test-artifacts/."""

from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.harness import ADMIN_TOKEN, Services, needs_chromium
from tests.support.forms import encode, won_deal_body

pytestmark = needs_chromium


def unix(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())  # type: ignore[misc]


def test_traffic_page_draws_revenue_per_day(
    page: Page, services: Services, artifacts: Path
) -> None:
    services.webhook(encode(
        won_deal_body(9700001, "kenesary_fb", price=1000, updated_at=unix(2025, 4, 2, 10)),
        won_deal_body(9700002, "aidana_reels", price=2500, updated_at=unix(2025, 4, 5, 10),
                      index=1),
    ))
    page.goto("/admin/#/traffic?from=2025-04-01&to=2025-04-07")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    chart = page.locator("#traffic-chart")
    expect(chart).to_have_attribute("data-points", "7")
    expect(chart.locator("canvas")).to_have_count(1)
    legend = chart.locator(".u-legend")
    expect(legend).to_contain_text("Kenesary")
    expect(legend).to_contain_text("Aidana")
    expect(page.locator("#traffic-body tr")).to_have_count(2)
    expect(page.locator("#traffic-foot td[data-label=Reversed]")).to_have_text("—")
    # A row opens onto its sales, each linked to the lead in AmoCRM and to its events.
    page.get_by_role("button", name="Sales of Kenesary").click()
    sale = page.locator('#traffic-body tr.sales-detail tr[data-lead-id="9700001"]')
    expect(sale.get_by_role("link", name="#9700001")).to_have_attribute(
        "href", "https://onaiagencykz.amocrm.ru/leads/detail/9700001")
    expect(sale.get_by_role("link", name="events")).to_have_attribute(
        "href", "#/logs?lead_id=9700001")
    expect(sale.locator("td[data-label=Amount]")).to_have_text("1,000")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=artifacts / "admin-traffic-chart.png", full_page=True)
