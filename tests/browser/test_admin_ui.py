"""The admin UI as an operator uses it, in Chromium, against the whole stack: sign in,
filter and search, expand a deal, replay an event that gave up, read the dashboards, and
stay safe with hostile deal data. Screenshots go to test-artifacts/."""

import dataclasses
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from amoroute.timeutil import to_timestamp
from amoroute.v1 import referral_pb2, traffic_pb2
from edge.amocrm_form import FormLimits
from edge.event_lifecycle import ERROR, Outcome
from edge.webhook import intake
from tests.browser.harness import (
    ADMIN_TOKEN,
    XSS_TARGETOLOGIST,
    Services,
    Watched,
    needs_chromium,
    open_page,
)
from tests.support.forms import encode, won_deal_body

pytestmark = needs_chromium

XSS_NAME = "<img src=x onerror=alert(1)>"
XSS_UTM = "<script>alert(2)</script>"


@dataclasses.dataclass(frozen=True)
class Seeded:
    traffic: int
    referral: int
    both: int
    organic: int
    hostile: int
    garbage: int
    gave_up: int


@pytest.fixture(scope="module")
def seeded(services: Services) -> Seeded:
    """A morning's worth of events: each kind of routing, an unparseable body, a deal with
    hostile text, and an event that gave up while the router was down."""
    now = int(time.time())
    services.referral.UpsertPartner(referral_pb2.UpsertPartnerRequest(
        partner=referral_pb2.Partner(referral_code="BROWSER1", name="Browser Partner",
                                     commission_bp=1000)))
    [traffic] = services.webhook(encode(won_deal_body(
        9500001, "kenesary_fb", "tp_june", name="Курс «Таргетолог PRO»", price=150000,
        updated_at=now)))
    [referral] = services.webhook(encode(won_deal_body(9500002, "ref_BROWSER1", price=99000,
                                                       updated_at=now)))
    [both] = services.webhook(encode(won_deal_body(9500003, "ref_BROWSER2", "kenesary_june",
                                                   price=42000, updated_at=now)))
    [organic] = services.webhook(encode(won_deal_body(9500004, "google_organic",
                                                      updated_at=now)))
    [hostile] = services.webhook(encode(won_deal_body(9500005, XSS_UTM, name=XSS_NAME,
                                                      updated_at=now)))
    services.webhook(encode(won_deal_body(9500007, "xss_fb", price=777, updated_at=now)))
    [garbage] = services.webhook(b"\xff\xfe not a form %%%")
    # Logged while the router was down, retried until the worker gave up.
    [row], _ = intake(encode(won_deal_body(9500006, "kenesary_retry", price=12345,
                                           updated_at=now)),
                      "application/x-www-form-urlencoded", FormLimits())
    [gave_up] = services.logs.insert([row])
    services.logs.record_outcomes([Outcome(
        gave_up, ERROR, error_message="router UNAVAILABLE: connection refused "
        "(gave up after 10 attempts)")])
    return Seeded(traffic, referral, both, organic, hostile, garbage, gave_up)


def sign_in(page: Page, path: str = "/admin/", token: str = ADMIN_TOKEN) -> None:
    page.goto(path)
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def row(page: Page, log_id: int):  # type: ignore[no-untyped-def]
    return page.locator(f'#logs-body tr.log[data-log-id="{log_id}"]')


def detail(page: Page, log_id: int):  # type: ignore[no-untyped-def]
    return page.locator(f'#logs-body tr.detail[data-log-id="{log_id}"]')


def digits(text: str) -> int:
    return int(re.sub(r"\D", "", text) or 0)


def screenshot(page: Page, path: Path) -> None:
    page.evaluate("window.scrollTo(0, 0)")  # the sticky bar then stays at the top
    page.screenshot(path=path, full_page=True)


def assert_nothing_ran(watched: Watched) -> None:
    assert watched.dialogs == []
    assert watched.page_errors == []
    assert watched.console_errors == []


def test_sign_in_keeps_the_token_out_of_urls_and_opens_the_log(
    page: Page, seeded: Seeded, watched: Watched, artifacts: Path
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto("/admin/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-error")).to_have_text("That token is not the admin token.")
    expect(page.locator("#logs-view")).to_be_hidden()

    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#logs-view")).to_be_visible()
    for log_id in (seeded.traffic, seeded.referral, seeded.both, seeded.organic):
        expect(row(page, log_id)).to_be_visible()
    expect(row(page, seeded.traffic).locator("td[data-label=Status] .badge")).to_have_text(
        "success")
    expect(row(page, seeded.traffic).locator("td[data-label=Routing] .badge")).to_have_text(
        "traffic")
    expect(row(page, seeded.both).locator("td[data-label=Routing] .badge")).to_have_class(
        re.compile(r"\brouting-both\b"))
    expect(row(page, seeded.garbage).locator(".error-line")).to_contain_text(
        "unparseable webhook body")
    expect(page.locator("#stats .stat-card").first).to_contain_text("Events")
    # The retention in force, and the oldest event kept (the seeded ones are there).
    expect(page.locator("#retention")).to_contain_text("90 days (not succeeded: 180 days)")
    expect(page.locator("#retention .stat-note")).to_contain_text("oldest event kept: ")
    expect(page.locator("#retention .stat-note")).not_to_contain_text("kept: none")

    assert page.evaluate("sessionStorage.getItem('amoroute.adminToken')") == ADMIN_TOKEN
    assert all(ADMIN_TOKEN not in url for url in [page.url, *requested])
    assert watched.dialogs == [] and watched.page_errors == []
    # The only console error is the browser reporting the refused token's 401.
    assert all("401" in error for error in watched.console_errors), watched.console_errors
    screenshot(page, artifacts / "admin-logs.png")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('amoroute.adminToken')") is None


def test_the_sign_in_link_of_make_run_signs_in_and_leaves_the_token_nowhere(
    page: Page, seeded: Seeded, watched: Watched
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"/admin/#token={ADMIN_TOKEN}")
    expect(page.locator("#logs-view")).to_be_visible()
    expect(row(page, seeded.traffic)).to_be_visible()
    assert ADMIN_TOKEN not in page.url
    assert all(ADMIN_TOKEN not in url for url in requested)
    # The link's entry was replaced, not followed by a new one: going back leaves the admin.
    page.go_back()
    assert ADMIN_TOKEN not in page.url and "/admin/" not in page.url
    assert_nothing_ran(watched)


def test_the_link_of_one_event_opens_it_alone_with_its_details(
    page: Page, seeded: Seeded, watched: Watched
) -> None:
    sign_in(page, f"/admin/#/logs/{seeded.traffic}")
    expect(row(page, seeded.traffic)).to_be_visible()
    expect(page.locator("#logs-body tr.log")).to_have_count(1)
    expect(detail(page, seeded.traffic)).to_be_visible()
    expect(detail(page, seeded.traffic)).to_contain_text("kenesary")
    assert_nothing_ran(watched)


def test_filters_and_search_narrow_the_table_and_survive_a_reload(
    page: Page, seeded: Seeded, watched: Watched
) -> None:
    sign_in(page)
    expect(row(page, seeded.traffic)).to_be_visible()

    page.locator("#filters select[name=status]").select_option("error")
    expect(page).to_have_url(re.compile(r"#/logs\?status=error$"))
    expect(row(page, seeded.gave_up)).to_be_visible()
    expect(row(page, seeded.traffic)).to_have_count(0)
    statuses = page.locator("#logs-body tr.log td[data-label=Status] .badge").all_text_contents()
    assert set(statuses) == {"error"} and len(statuses) >= 2

    page.locator("#filters select[name=status]").select_option("")
    page.locator("#filters select[name=routing]").select_option("referral")
    expect(row(page, seeded.referral)).to_be_visible()
    expect(row(page, seeded.both)).to_have_count(0)

    page.get_by_role("button", name="Clear").click()
    expect(page).to_have_url(re.compile(r"#/logs$"))
    page.locator("#filters input[name=q]").fill("browser1")
    page.locator("#filters input[name=q]").press("Enter")
    expect(page).to_have_url(re.compile(r"q=browser1"))
    expect(page.locator("#logs-body tr.log")).to_have_count(1)
    expect(row(page, seeded.referral)).to_be_visible()

    page.reload()  # the deep link and the tab's sign-in both survive
    expect(page.locator("#filters input[name=q]")).to_have_value("browser1")
    expect(page.locator("#logs-body tr.log")).to_have_count(1)
    expect(row(page, seeded.referral)).to_be_visible()
    assert_nothing_ran(watched)


def test_a_deal_expands_to_its_json_and_attempts(
    page: Page, seeded: Seeded, watched: Watched, artifacts: Path
) -> None:
    sign_in(page, "/admin/#/logs?lead_id=9500001")
    expect(page.locator("#filters input[name=lead_id]")).to_have_value("9500001")
    expect(page.locator("#logs-body tr.log")).to_have_count(1)
    row(page, seeded.traffic).get_by_role("button", name="Details").click()

    opened = detail(page, seeded.traffic)
    expect(opened).to_be_visible()
    expect(opened.locator("pre.json")).to_contain_text('"name": "Курс «Таргетолог PRO»"')
    expect(opened.locator("pre.json")).to_contain_text('"id": "9500001"')
    expect(opened.locator("table.attempts tbody tr")).to_have_count(1)
    expect(opened.locator("table.attempts td[data-label=Status] .badge")).to_have_text("success")
    expect(opened.locator(".facts")).to_contain_text("traffic")
    expect(opened.get_by_role("link", name="open the lead")).to_have_attribute(
        "href", "https://onaiagencykz.amocrm.ru/leads/detail/9500001")
    screenshot(page, artifacts / "admin-log-detail.png")

    row(page, seeded.traffic).get_by_role("button", name="Hide").click()
    expect(opened).to_be_hidden()
    assert_nothing_ran(watched)


def test_why_credited_shows_the_matched_pattern_and_the_credited_targetologist(
    page: Page, seeded: Seeded, watched: Watched, artifacts: Path
) -> None:
    sign_in(page, f"/admin/#/logs/{seeded.traffic}")
    why = detail(page, seeded.traffic).get_by_role("region", name="Why credited")
    expect(why).to_contain_text("kenesary_fb")
    expect(why).to_contain_text("Kenesary pattern")
    credit = why.locator("li.credit", has_text="traffic")
    expect(credit).to_contain_text("Kenesary")
    expect(credit).to_contain_text("150")
    expect(credit.locator(".badge")).to_have_text("recorded")
    expect(why).to_contain_text("application/x-www-form-urlencoded")
    screenshot(page, artifacts / "admin-log-why-credited.png")

    page.goto(f"/admin/#/logs/{seeded.organic}")  # signed in already, in this tab
    why = detail(page, seeded.organic).get_by_role("region", name="Why credited")
    expect(why).to_contain_text("No rule matched")
    expect(why.locator("li.credit .badge", has_text="recorded")).to_have_count(0)
    assert_nothing_ran(watched)


def test_replaying_an_event_that_gave_up_credits_its_sale(
    page: Page, seeded: Seeded, services: Services, watched: Watched
) -> None:
    assert list(services.traffic.ListSales(traffic_pb2.ListSalesRequest(lead_id=9500006)).sales) == []
    sign_in(page, "/admin/#/logs?status=error")
    expect(row(page, seeded.gave_up).locator(".error-line")).to_contain_text("gave up after 10")
    row(page, seeded.gave_up).get_by_role("button", name="Details").click()
    opened = detail(page, seeded.gave_up)

    replay = opened.get_by_role("button", name="Replay")
    replay.click()
    confirm = opened.get_by_role("button", name="Confirm replay")
    expect(confirm).to_be_visible()
    confirm.click()
    result = opened.locator(".replay-result")
    expect(result).to_contain_text("Replayed as #")
    expect(result.locator(".badge").first).to_have_text("success")
    expect(result.locator(".badge").nth(1)).to_have_text("traffic")

    [sale] = services.traffic.ListSales(traffic_pb2.ListSalesRequest(lead_id=9500006)).sales
    assert (sale.targetologist, sale.amount) == ("Kenesary", 12345)

    opened.get_by_role("button", name="Show every event of this lead").click()
    expect(page).to_have_url(re.compile(r"lead_id=9500006"))
    expect(page.locator("#logs-body tr.log")).to_have_count(2)
    newest = page.locator("#logs-body tr.log").first
    expect(newest.locator("td[data-label=Source]")).to_have_text(f"replay of #{seeded.gave_up}")
    expect(newest.locator("td[data-label=Status] .badge")).to_have_text("success")
    assert_nothing_ran(watched)


def test_dashboards_show_the_services_figures(
    page: Page, seeded: Seeded, services: Services, watched: Watched, artifacts: Path
) -> None:
    sign_in(page, "/admin/#/traffic?all=1")
    expect(page.locator("#traffic-caption")).to_have_text("All time")
    stats = services.traffic.GetTargetologistStats(traffic_pb2.GetTargetologistStatsRequest())
    assert stats.stats
    expect(page.locator("#traffic-body tr")).to_have_count(len(stats.stats))
    for s in stats.stats:
        shown = page.locator("#traffic-body tr").filter(has_text=s.targetologist)
        assert digits(shown.locator("td[data-label=Sales]").text_content() or "") == s.sales
        assert digits(shown.locator("td[data-label=Revenue]").text_content() or "") == s.revenue
    total = page.locator("#traffic-foot tr")
    assert digits(total.locator("td[data-label=Revenue]").text_content() or "") == sum(
        s.revenue for s in stats.stats)
    hostile = page.locator("#traffic-body tr").filter(has_text=XSS_TARGETOLOGIST)
    expect(hostile).to_have_count(1)  # the markup shows as text
    assert page.locator("main img").count() == 0
    screenshot(page, artifacts / "admin-traffic.png")

    # The default range is this month, in the browser's time zone (UTC here).
    page.get_by_role("link", name="Traffic sales").click()
    today = datetime.now(UTC).date()
    month_start = today.replace(day=1)
    expect(page.locator("#traffic-caption")).to_have_text(
        f"Won from {month_start.isoformat()} to {today.isoformat()} (inclusive)")
    month = services.traffic.GetTargetologistStats(traffic_pb2.GetTargetologistStatsRequest(
        won_from=to_timestamp(datetime(month_start.year, month_start.month, 1, tzinfo=UTC)),
        won_to=to_timestamp(datetime(today.year, today.month, today.day, tzinfo=UTC)
                            + timedelta(days=1))))
    expect(page.locator("#traffic-body tr")).to_have_count(len(month.stats))
    kenesary = page.locator("#traffic-body tr").filter(has_text="Kenesary")
    [expected] = [s for s in month.stats if s.targetologist == "Kenesary"]
    expect(kenesary.locator("td[data-label=Sales]")).to_have_text(str(expected.sales))

    page.get_by_role("link", name="Referral").click()
    expect(page.locator("#referral-view")).to_be_visible()
    page.locator("#referral-range").get_by_role("button", name="All time").click()
    expect(page.locator("#referral-caption")).to_have_text("All time")
    referrers = services.referral.GetReferrerStats(referral_pb2.GetReferrerStatsRequest())
    expect(page.locator("#referral-body tr")).to_have_count(len(referrers.stats))
    for s in referrers.stats:
        shown = page.locator("#referral-body tr").filter(
            has=page.locator("td[data-label=Code]", has_text=re.compile(f"^{s.referral_code}$")))
        cells = {label: shown.locator(f'td[data-label="{label}"]').text_content() or ""
                 for label in ("Conversions", "Amount", "Commission", "Partner")}
        assert digits(cells["Conversions"]) == s.conversions
        assert digits(cells["Amount"]) == s.amount_total
        assert digits(cells["Commission"]) == (s.commission_total if s.commission_bp else 0)
        assert cells["Partner"] == (s.partner_name if s.partner_registered else "not registered")
    partner = page.locator("#referral-body tr").filter(has_text="BROWSER1")
    expect(partner.locator("td[data-label=Partner]")).to_have_text("Browser Partner")
    expect(partner.locator('td[data-label="Commission rate"]')).to_have_text("10 %")
    expect(partner.locator("td[data-label=Commission]")).to_have_text("9,900")
    screenshot(page, artifacts / "admin-referral.png")
    assert_nothing_ran(watched)


def test_hostile_deal_text_shows_as_text_and_runs_nothing(
    page: Page, seeded: Seeded, watched: Watched
) -> None:
    sign_in(page, "/admin/#/logs?q=onerror")
    hostile = row(page, seeded.hostile)
    expect(hostile.locator(".deal-name")).to_have_text(XSS_NAME)
    expect(hostile.locator("td[data-label=UTM]")).to_contain_text(XSS_UTM)
    hostile.get_by_role("button", name="Details").click()
    expect(detail(page, seeded.hostile).locator("pre.json")).to_contain_text(XSS_NAME)
    assert page.locator("main img, main script").count() == 0
    page.wait_for_timeout(500)  # give an injected handler every chance to fire
    assert page.evaluate("document.querySelectorAll('[onerror]').length") == 0
    assert_nothing_ran(watched)


def test_refresh_shows_new_events_and_load_more_pages_without_repeats(
    page: Page, seeded: Seeded, services: Services, watched: Watched
) -> None:
    leads = [won_deal_body(9600000 + n, "", index=n) for n in range(60)]
    services.webhook(encode(*leads))
    page.clock.install()  # the auto-refresh timer runs on the test's clock
    sign_in(page, "/admin/#/logs?source=amocrm")
    expect(page.locator("#logs-body tr.log")).to_have_count(50)
    page.get_by_role("button", name="Load more").click()
    expect(page.locator("#logs-body tr.log")).not_to_have_count(50)
    shown = page.locator("#logs-body tr.log").evaluate_all(
        "rows => rows.map(r => Number(r.dataset.logId))")
    assert len(shown) == len(set(shown)) and shown == sorted(shown, reverse=True)
    assert len(shown) > 50

    [new] = services.webhook(encode(won_deal_body(9600100, "kenesary_fb")))
    page.get_by_role("button", name="Refresh").click()
    expect(row(page, new)).to_be_visible()

    # Turning auto-refresh on reloads the list once; the next event comes after that.
    with page.expect_response(lambda response: "/api/admin/webhook-logs?" in response.url):
        page.get_by_label("Auto-refresh every 10 s").check()
    expect(page).to_have_url(re.compile(r"auto=1"))
    [newer] = services.webhook(encode(won_deal_body(9600101, "kenesary_fb")))
    expect(row(page, newer)).to_have_count(0)
    page.clock.run_for(11_000)
    expect(row(page, newer)).to_be_visible()
    assert_nothing_ran(watched)


def test_on_a_phone_every_view_fits_the_screen(
    browser: Browser, services: Services, seeded: Seeded, watched: Watched, artifacts: Path
) -> None:
    page = open_page(browser, services, watched, viewport={"width": 390, "height": 844},
                     is_mobile=True, has_touch=True, device_scale_factor=2)
    try:
        sign_in(page, "/admin/#/logs?lead_id=9500001")
        expect(row(page, seeded.traffic)).to_be_visible()
        row(page, seeded.traffic).get_by_role("button", name="Details").click()
        expect(detail(page, seeded.traffic).locator("pre.json")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # Each cell is labelled with its column once the table turns into cards.
        label = row(page, seeded.traffic).locator("td[data-label=Status]").evaluate(
            "td => getComputedStyle(td, '::before').content")
        assert label == '"Status"'
        screenshot(page, artifacts / "admin-logs-phone.png")
        for view in ("traffic", "referral"):
            page.goto(f"/admin/#/{view}?all=1")
            expect(page.locator(f"#{view}-body tr").first).to_be_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert_nothing_ran(watched)
    finally:
        page.context.close()
