"""The sales dashboards' revenue-per-day charts in Chromium, against the whole stack:
one point per day of the range, one line per targetologist or referral code; a row opens
onto its sales, page by page, and exports them. Screenshots in test-artifacts/."""

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import Page, expect

from amoroute.callers import ROUTER, CallerCredentials
from amoroute.channels import channel
from amoroute.timeutil import to_timestamp
from amoroute.v1 import deal_pb2, referral_pb2, referral_pb2_grpc
from tests.browser.harness import ADMIN_TOKEN, Services, needs_chromium
from tests.support.forms import encode, won_deal_body
from tests.support.stack import TOKENS

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


def test_referral_page_draws_amount_per_day_and_a_code_opens_onto_all_its_sales(
    page: Page, services: Services, artifacts: Path
) -> None:
    won = to_timestamp(datetime(2025, 4, 3, 9, tzinfo=UTC))
    # More conversions than a page of the drill-down, recorded and one reversed as the
    # router does.
    with channel(services.running.addr("referral"), CallerCredentials(token=TOKENS[ROUTER])) as ch:
        referral = referral_pb2_grpc.ReferralServiceStub(ch)
        referral.BatchRecordConversions(referral_pb2.BatchRecordConversionsRequest(requests=[
            referral_pb2.RecordConversionRequest(conversion=referral_pb2.Conversion(
                lead_id=9710000 + n, account_id=32145678, referral_code="CHART5",
                amount=1000, won_at=won, utm=deal_pb2.UtmMarks(source="ref_CHART5")))
            for n in range(1, 131)
        ]))
        referral.ReverseConversion(referral_pb2.ReverseConversionRequest(
            lead_id=9710001, account_id=32145678,
            reversed_at=to_timestamp(datetime(2025, 4, 6, tzinfo=UTC)), reason="status changed"))
    services.webhook(encode(
        won_deal_body(9720001, "ref_OTHER6", price=700, updated_at=unix(2025, 4, 5, 10)),
    ))
    page.goto("/admin/#/referral?from=2025-04-01&to=2025-04-07")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    chart = page.locator("#referral-chart")
    expect(chart).to_have_attribute("data-points", "7")
    expect(chart.locator("canvas")).to_have_count(1)
    expect(chart.locator(".u-legend")).to_contain_text("CHART5")
    expect(chart.locator(".u-legend")).to_contain_text("OTHER6")
    row = page.locator("#referral-body tr").filter(has_text="CHART5")
    expect(row.locator("td[data-label=Conversions]")).to_have_text("129")
    expect(row.locator("td[data-label=Reversed]")).to_have_text("1 (1,000)")
    page.screenshot(path=artifacts / "admin-referral-chart.png", full_page=True)
    # The code's sales: the first page, then the rest, each linked to its lead.
    page.get_by_role("button", name="Sales of CHART5").click()
    detail = page.locator("#referral-body tr.sales-detail")
    expect(detail.locator("tbody tr")).to_have_count(100)
    expect(detail.get_by_role("status")).to_contain_text("100 sales shown, more")
    detail.get_by_role("button", name="Show more").click()
    expect(detail.locator("tbody tr")).to_have_count(130)
    expect(detail.get_by_role("button", name="Show more")).to_be_hidden()
    reversed_sale = detail.locator('tr[data-lead-id="9710001"]')
    expect(reversed_sale.locator("td[data-label=Status]")).to_have_text("reversed 2025-04-06")
    expect(reversed_sale.get_by_role("link", name="events")).to_have_attribute(
        "href", "#/logs?lead_id=9710001")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export the sales of CHART5 as CSV").click()
    raw = Path(download.value.path()).read_bytes()
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(rows) == 130 and {r["utm_source"] for r in rows} == {"ref_CHART5"}
    assert download.value.suggested_filename.startswith("referral-sales-CHART5-")
