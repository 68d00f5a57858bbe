"""A newcomer's first minutes, in Chromium, against a fresh stack: the sample payload was won in
2025, so "this month" holds nothing and the dashboards show all time instead, saying so; a
code's "not registered" row is registered as a partner from the referral page."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import Page, expect

from amoroute.timeutil import to_timestamp
from amoroute.v1 import referral_pb2, traffic_pb2
from tests.browser.harness import ADMIN_TOKEN, Services, Watched, needs_chromium
from tests.support.forms import encode, won_deal_body

pytestmark = needs_chromium

# Won on 2025-06-23 (its updated_at), like the sample payload.
WON_2025 = int(datetime(2025, 6, 23, 12, tzinfo=UTC).timestamp())


def sign_in(page: Page, path: str) -> None:
    page.goto(path)
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()


def this_month() -> tuple[datetime, datetime]:
    today = datetime.now(UTC).date()
    start = datetime(today.year, today.month, 1, tzinfo=UTC)
    return start, datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)


def assert_nothing_ran(watched: Watched) -> None:
    assert (watched.dialogs, watched.page_errors, watched.console_errors) == ([], [], [])


def test_the_sample_sale_won_in_2025_shows_although_this_month_is_empty(
    page: Page, services: Services, watched: Watched, fixtures_dir: Path, artifacts: Path
) -> None:
    services.webhook((fixtures_dir / "status_won_with_utm.form").read_bytes())
    start, end = this_month()
    month = services.traffic.GetTargetologistStats(traffic_pb2.GetTargetologistStatsRequest(
        won_from=to_timestamp(start), won_to=to_timestamp(end)))
    assert list(month.stats) == []  # the premise: nothing was won this month

    sign_in(page, "/admin/#/traffic")
    today = datetime.now(UTC).date()
    expect(page.locator("#traffic-notice")).to_have_text(
        f"No traffic sales were won from {start.date().isoformat()} to {today.isoformat()} "
        "(by the deal's won date), so all time is shown: 1 sale.")
    expect(page.locator("#traffic-caption")).to_have_text("All time")
    expect(page.locator("#traffic-range-hint")).to_contain_text("won date")
    [row] = page.locator("#traffic-body tr").all()
    expect(row.locator("td[data-label=Targetologist]")).to_have_text("Kenesary")
    expect(row.locator("td[data-label=Sales]")).to_have_text("1")
    expect(row.locator("td[data-label=Revenue]")).to_have_text("150,000")
    expect(page.locator("#traffic-empty")).to_be_hidden()
    page.screenshot(path=artifacts / "admin-newcomer-traffic.png", full_page=True)

    # A range that holds the sale shows it as asked, without a notice.
    page.locator("#traffic-range input[name=from]").fill("2025-06-01")
    page.locator("#traffic-range input[name=to]").fill("2025-06-30")
    page.locator("#traffic-range").get_by_role("button", name="Show").click()
    expect(page.locator("#traffic-caption")).to_have_text(
        "Won from 2025-06-01 to 2025-06-30 (inclusive)")
    expect(page.locator("#traffic-notice")).to_be_hidden()
    expect(page.locator("#traffic-body tr")).to_have_count(1)
    assert_nothing_ran(watched)


def test_a_not_registered_code_is_registered_from_its_row_and_the_row_changes(
    page: Page, services: Services, watched: Watched, artifacts: Path
) -> None:
    services.webhook(encode(won_deal_body(9800001, "ref_newcomer", price=80000,
                                          updated_at=WON_2025)))
    sign_in(page, "/admin/#/referral")
    expect(page.locator("#referral-notice")).to_contain_text(
        "No referral conversions were won from")
    row = page.locator("#referral-body tr").filter(has_text="NEWCOMER")
    expect(row.locator("td[data-label=Partner]")).to_have_text("not registered")
    expect(row.locator('td[data-label="Commission rate"]')).to_have_text("not set")

    row.get_by_role("button", name="Register partner NEWCOMER").click()
    form = page.locator("#partner-form")
    expect(form).to_be_visible()
    expect(form.get_by_role("heading")).to_have_text("Register partner NEWCOMER")
    expect(form.get_by_label("Referral code")).to_have_value("NEWCOMER")
    form.get_by_label("Partner name").fill("Newcomer Partner")
    form.get_by_label("Commission, %").fill("12.5")
    form.get_by_role("button", name="Save partner").click()

    expect(form).to_be_hidden()
    expect(page.locator("#referral-notice")).to_contain_text(
        "Partner NEWCOMER (Newcomer Partner) registered: 12.5 % commission.")
    row = page.locator("#referral-body tr").filter(has_text="NEWCOMER")
    expect(row.locator("td[data-label=Partner]")).to_have_text("Newcomer Partner")
    expect(row.locator('td[data-label="Commission rate"]')).to_have_text("12.5 %")
    expect(row.locator("td[data-label=Commission]")).to_have_text("10,000")
    [stats] = services.referral.GetReferrerStats(
        referral_pb2.GetReferrerStatsRequest(referral_code="NEWCOMER")).stats
    assert (stats.partner_name, stats.commission_bp, stats.commission_total) == (
        "Newcomer Partner", 1250, 10000)
    page.screenshot(path=artifacts / "admin-newcomer-referral.png", full_page=True)

    # Editing: the service's refusal is shown, named, and nothing changes.
    row.get_by_role("button", name="Edit partner NEWCOMER").click()
    expect(form.get_by_label("Commission, %")).to_have_value("12.5")
    page.evaluate("document.getElementById('partner-form').noValidate = true")
    form.get_by_label("Commission, %").fill("150")
    form.get_by_role("button", name="Save partner").click()
    expect(page.locator("#partner-error")).to_contain_text("commission_bp:")
    expect(form).to_be_visible()
    form.get_by_label("Commission, %").fill("7")
    form.get_by_role("button", name="Save partner").click()
    expect(page.locator("#referral-notice")).to_contain_text(
        "Partner NEWCOMER (Newcomer Partner) updated: 7 % commission.")
    expect(row.locator("td[data-label=Commission]")).to_have_text("5,600")
    # Chromium logs the refused request itself; nothing else may show up.
    assert watched.console_errors == [
        "Failed to load resource: the server responded with a status of 400 (Bad Request)"]
    watched.console_errors.clear()
    assert_nothing_ran(watched)


def test_a_partner_is_registered_before_its_first_conversion(
    page: Page, services: Services, watched: Watched
) -> None:
    sign_in(page, "/admin/#/referral?all=1")
    page.get_by_role("button", name="Register a partner").click()
    form = page.locator("#partner-form")
    form.get_by_label("Referral code").fill("future1")
    form.get_by_label("Commission, %").fill("10")
    form.get_by_role("button", name="Save partner").click()
    expect(page.locator("#referral-notice")).to_have_text(
        "Partner FUTURE1 registered: 10 % commission.")
    services.webhook(encode(won_deal_body(9800002, "ref_FUTURE1", price=1000,
                                          updated_at=WON_2025)))
    page.locator("#referral-refresh").click()
    row = page.locator("#referral-body tr").filter(has_text="FUTURE1")
    expect(row.locator("td[data-label=Partner]")).to_have_text("unnamed")
    expect(row.locator("td[data-label=Commission]")).to_have_text("100")
    assert_nothing_ran(watched)
