"""The logs page's insights in Chromium against the whole stack: the flow chart (a point
per interval, by status, p95), "N matching" on a filtered view, one link per event (from
the list and from the webhook's answer), and the CSV export read back. Screenshots of the
page (desktop, and a phone in the dark theme) go to test-artifacts/."""

import csv
import io
import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from playwright.sync_api import Browser, Page, expect

from amoroute.timeutil import now
from edge.event_lifecycle import Outcome
from edge.log_store import NewLog, webhook_logs
from tests.browser.harness import ADMIN_TOKEN, Services, Watched, needs_chromium, open_page
from tests.support.forms import encode, won_deal_body

pytestmark = needs_chromium


def seed_flow(services: Services) -> list[int]:
    """Events over the last hours, by status, with processing times; returns the failed
    ones' ids (newest first)."""
    moment = now()
    plan = [(hours, "success", 40 + hours) for hours in range(1, 12)]
    plan += [(2, "error", 900), (3, "error", 1200), (3, "partial", 300), (5, "success", 35)]
    ids = services.logs.insert([
        NewLog(source="amocrm", deal_data={"lead": n}, lead_id=9910000 + n,
               deal_name=f"Сделка «Поток» {n}")
        for n in range(len(plan))
    ])
    services.logs.record_outcomes([
        Outcome(log_id, status, decision="traffic", utm_source="kenesary_fb",
                error_message="traffic: UNAVAILABLE" if status == "error" else None)
        for log_id, (_, status, _) in zip(ids, plan, strict=True)
    ])
    with services.engine.begin() as conn:
        for log_id, (hours, _, ms) in zip(ids, plan, strict=True):
            conn.execute(sa.update(webhook_logs).where(webhook_logs.c.id == log_id).values(
                received_at=moment - timedelta(hours=hours, minutes=5), processing_ms=ms,
                retry_at=None))
    return sorted((i for i, (_, s, _) in zip(ids, plan, strict=True) if s == "error"),
                  reverse=True)


def sign_in(page: Page, path: str = "/admin/#/logs") -> None:
    page.goto(path)
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()


def test_flow_chart_totals_links_and_csv_export(
    page: Page, browser: Browser, services: Services, watched: Watched, artifacts: Path
) -> None:
    failed = seed_flow(services)
    sign_in(page)

    chart = page.locator("#flow-chart")
    # A point per hour of the default 24h window, drawn on a canvas, failures named.
    expect(chart).to_have_attribute("data-points", "24")
    expect(chart.locator("canvas")).to_have_count(1)
    expect(chart).to_have_attribute("aria-label", "15 webhooks in the last 24h: 2 failed, "
                                    "1 partial, 0 pending")
    for label in ("error", "partial", "pending", "success", "p95"):
        expect(chart.locator(".u-legend")).to_contain_text(label)
    page.screenshot(path=artifacts / "insights-logs-chart.png", full_page=True)

    page.locator("#stats-window").select_option("1h")
    expect(chart).to_have_attribute("data-points", "60")
    expect(chart).to_have_attribute("data-window", "1h")
    page.locator("#stats-window").select_option("7d")
    expect(chart).to_have_attribute("data-points", "28")

    # A filtered view says how many events match, beyond the page shown.
    page.locator("#filters [name=status]").select_option("error")
    expect(page.locator("#logs-count")).to_contain_text("2 matching")
    expect(page.locator("#logs-body tr.log")).to_have_count(2)
    # Times read as relative ("3 hours ago"), the absolute time on hover.
    received = page.locator(f'#logs-body tr.log[data-log-id="{failed[0]}"] td[data-label=Received] time')
    expect(received).to_have_text("3 hours ago")
    expect(received).to_have_attribute("title", re.compile(r"\d{1,2}/\d{1,2}/\d{2}, "))

    # The export holds the same filtered events, readable with Cyrillic intact.
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    saved = Path(download.value.path())
    assert download.value.suggested_filename.endswith(".csv")
    raw = saved.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [int(r["id"]) for r in rows] == failed
    assert all(r["processing_status"] == "error" and "«Поток»" in r["deal_name"] for r in rows)

    # Each event's id is its link: it opens the event alone, details shown.
    page.locator(f'#logs-body a.event-link:text-is("#{failed[0]}")').click()
    expect(page).to_have_url(f"{services.running.edge_url}/admin/#/logs/{failed[0]}")
    expect(page.locator("#logs-body tr.log")).to_have_count(1)
    detail = page.locator(f'#logs-body tr.detail[data-log-id="{failed[0]}"]')
    expect(detail).to_be_visible()
    expect(detail).to_contain_text("traffic: UNAVAILABLE")

    # The webhook's answer links each event it logged to its page.
    reply = services.http.post(
        "/webhook/amocrm", content=encode(won_deal_body(9920001, "kenesary_fb", price=5000)),
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    [link] = reply.json()["links"]
    [log_id] = reply.json()["log_ids"]
    page.goto(link)
    expect(page.locator("#logs-body tr.log")).to_have_count(1)
    expect(page.locator(f'#logs-body tr.log[data-log-id="{log_id}"]')).to_contain_text(
        "Lead 9920001")
    assert not watched.page_errors and not watched.console_errors and not watched.dialogs

    # Times in the zone the operator picks, date filters read in it too (Almaty: UTC+5).
    page.goto("/admin/#/logs")
    page.locator("#time-zone").select_option("Asia/Almaty")
    almaty = ZoneInfo("Asia/Almaty")
    since = (now() - timedelta(hours=2, minutes=30)).astimezone(almaty)
    page.locator("#filters [name=received_from]").fill(since.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Apply").click()
    # The 1 h and 2 h old events and the webhook's: 4 (read as UTC it would be none).
    expect(page.locator("#logs-count")).to_contain_text("4 matching")
    newest = page.locator(f'#logs-body tr.log[data-log-id="{log_id}"] td[data-label=Received] time')
    received = datetime.fromisoformat(newest.get_attribute("datetime") or "").astimezone(almaty)
    expect(newest).to_have_attribute("title", re.compile(
        rf"\b{received.strftime('%I').lstrip('0')}:{received.strftime('%M:%S')}\b"))
    assert not watched.page_errors and not watched.console_errors and not watched.dialogs

    # On a phone in the dark theme the chart fits the screen's width.
    phone = open_page(browser, services, watched, viewport={"width": 390, "height": 844},
                      color_scheme="dark", is_mobile=True, has_touch=True)
    try:
        sign_in(phone)
        phone_chart = phone.locator("#flow-chart")
        expect(phone_chart).to_have_attribute("data-points", "24")
        box = phone_chart.locator("canvas").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
        phone_chart.scroll_into_view_if_needed()
        phone.screenshot(path=artifacts / "insights-logs-chart-phone-dark.png")
    finally:
        phone.context.close()
    assert not watched.page_errors and not watched.console_errors


def test_sales_dashboards_export_what_they_show(
    page: Page, services: Services, watched: Watched, artifacts: Path
) -> None:
    services.webhook(encode(won_deal_body(9930001, "kenesary_fb", price=77000)))
    sign_in(page, "/admin/#/traffic")
    row = page.locator("#traffic-body tr").filter(has_text="Kenesary")
    expect(row).to_have_count(1)
    with page.expect_download() as download:
        page.locator("#traffic-export").click()
    raw = Path(download.value.path()).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    shown = (row.locator("td[data-label=Revenue]").text_content() or "").replace(",", "")
    [kenesary] = [r for r in rows if r["targetologist"] == "Kenesary"]
    assert kenesary["revenue"] == shown.strip()
    page.screenshot(path=artifacts / "insights-traffic.png", full_page=True)

    page.goto("/admin/#/referral")
    with page.expect_download() as download:
        page.locator("#referral-export").click()
    header = Path(download.value.path()).read_bytes().decode("utf-8-sig").splitlines()[0]
    assert header.startswith("referral_code,partner_name,")
    assert not watched.page_errors and not watched.console_errors and not watched.dialogs
