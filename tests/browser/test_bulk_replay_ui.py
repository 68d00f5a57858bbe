"""Bulk replay from the log view in Chromium against the whole stack (edge, worker and
services as processes): the filtered view offers "Replay all matching", shows the count
first, then starts the job, which the worker runs, and shows its progress to the end."""

from collections import Counter
from pathlib import Path

import sqlalchemy as sa
from playwright.sync_api import Page, expect

from edge.log_store import webhook_logs
from tests.browser.harness import ADMIN_TOKEN, Services, Watched, needs_chromium
from tests.support.forms import encode, won_deal_body

pytestmark = needs_chromium


def test_count_then_start_then_progress_to_the_end(
    page: Page, services: Services, watched: Watched, artifacts: Path
) -> None:
    ids = services.webhook(encode(*(
        won_deal_body(9770000 + n, "kenesary_fb", price=1000, index=n) for n in range(6))))
    # Not matched by the filter: not replayed.
    services.webhook(encode(won_deal_body(9780000, "kenesary_fb", price=1000)))

    page.goto("/admin/#/logs")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#filters [name=q]").fill("#977000")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#logs-body tr.log")).to_have_count(6)

    page.get_by_role("button", name="Replay all matching…").click()
    panel = page.locator("#bulk-replay-panel")
    expect(panel).to_contain_text("6 events match these filters")
    # Nothing starts before the admin confirms.
    assert services.http.get("/api/admin/jobs", headers=auth()).json()["items"] == []

    page.get_by_role("button", name="Replay all 6 matching").click()
    progress = page.locator("#bulk-replay-progress")
    expect(progress).to_have_attribute("data-state", "done", timeout=30_000)
    expect(progress).to_contain_text("6 of 6 replayed")
    page.screenshot(path=artifacts / "admin-bulk-replay.png", full_page=True)

    [job] = services.http.get("/api/admin/jobs", headers=auth()).json()["items"]
    assert (job["state"], job["total"], job["done"], job["failed"], job["created_by"]) == (
        "done", 6, 6, 0, "admin")
    c = webhook_logs.c
    with services.engine.connect() as conn:
        replayed = Counter(conn.execute(
            sa.select(c.replay_of).where(c.replay_of.is_not(None))).scalars())
    assert replayed == Counter(ids)
    assert not watched.page_errors and not watched.console_errors and not watched.dialogs


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
