"""The Rules page as an admin uses it, in Chromium, against the whole stack (the router
keeps the rules in its database): edit a rule and see the new version in the history and
in force, be told when someone else saved first, and see the problems of rules that do
not validate, named. Screenshots go to test-artifacts/."""

from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from tests.browser.harness import (
    ADMIN_TOKEN,
    ALICE_TOKEN,
    Services,
    Watched,
    needs_chromium,
    open_page,
)
from tests.browser.test_admin_ui import assert_nothing_ran, screenshot, sign_in
from tests.support.forms import encode, won_deal_body

pytestmark = needs_chromium

HOSTILE_COMMENT = "<img src=x onerror=alert(4)>"


def current(services: Services) -> dict:
    reply = services.http.get("/api/admin/rules",
                              headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert reply.status_code == 200, reply.text
    return reply.json()


def only_the_refusal_was_reported(watched: Watched, status: int) -> None:
    """Nothing ran; the only console error is the browser reporting the refused save."""
    assert watched.dialogs == [] and watched.page_errors == []
    assert len(watched.console_errors) == 1, watched.console_errors
    assert f"status of {status}" in watched.console_errors[0], watched.console_errors


def open_rules(page: Page) -> None:
    sign_in(page, token=ALICE_TOKEN)
    page.get_by_role("link", name="Rules").click()
    expect(page.get_by_role("heading", name="Routing rules")).to_be_visible()


def test_editing_a_rule_saves_a_version_shown_in_the_history_and_in_force(
    page: Page, services: Services, watched: Watched, artifacts: Path
) -> None:
    start = current(services)
    open_rules(page)
    expect(page.locator("#rules-meta")).to_contain_text(f"Version {start['version']}")
    editor = page.get_by_label("Rules (YAML)")
    expect(editor).to_have_value(start["yaml"])
    # Aidana also gets the bare source "aidana".
    # (The stack's rules file is written by yaml.safe_dump: lists in block style.)
    edited = start["yaml"].replace("    - aidana_*\n", "    - aidana_*\n    - aidana\n")
    assert edited != start["yaml"]
    editor.fill(edited)
    page.get_by_label("Comment").fill(f"bare aidana source {HOSTILE_COMMENT}")
    page.get_by_role("button", name="Save").click()

    saved = start["version"] + 1
    expect(page.locator("#rules-saved")).to_have_text(f"Saved as version {saved}.")
    expect(page.locator("#rules-meta")).to_contain_text(f"Version {saved} · saved by alice")
    newest = page.locator("#rules-history li").first
    expect(newest).to_contain_text(f"Version {saved} · alice")
    expect(newest).to_contain_text(f"bare aidana source {HOSTILE_COMMENT}")
    newest.locator("summary").click()
    expect(newest.locator(".diff-add")).to_have_text(["+    - aidana"])
    expect(newest.locator(".diff-hunk")).to_have_count(1)
    # The older versions are still listed below it.
    expect(page.locator(f'#rules-history li[data-version="{start["version"]}"]')).to_be_visible()
    screenshot(page, artifacts / "admin-rules.png")

    # In force: a won deal from "aidana" is now Aidana's sale.
    [log_id] = services.webhook(encode(won_deal_body(9600001, "aidana", price=5000)))
    assert services.logs.find(log_id)["routing_decision"] == "traffic"
    assert current(services)["author"] == "alice"
    assert_nothing_ran(watched)


def test_a_stale_save_says_who_saved_first_and_offers_their_version(
    page: Page, services: Services, watched: Watched, artifacts: Path
) -> None:
    start = current(services)
    open_rules(page)
    expect(page.locator("#rules-meta")).to_contain_text(f"Version {start['version']}")
    # Meanwhile another admin stores a version.
    theirs = start["yaml"] + "\n# checked by the admin\n"
    reply = services.http.put("/api/admin/rules", json={
        "yaml": theirs, "expected_version": start["version"], "comment": "checked"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert reply.status_code == 200, reply.text
    newer = reply.json()["version"]

    mine = start["yaml"] + "\n# mine\n"
    page.get_by_label("Rules (YAML)").fill(mine)
    page.get_by_role("button", name="Save").click()
    conflict = page.locator("#rules-conflict")
    expect(conflict).to_be_visible()
    expect(conflict).to_contain_text(
        f"admin saved version {newer} while you were editing version {start['version']}")
    # Nothing was lost or stored: the text stays in the editor until asked.
    expect(page.get_by_label("Rules (YAML)")).to_have_value(mine)
    assert current(services)["version"] == newer
    screenshot(page, artifacts / "admin-rules-conflict.png")

    page.get_by_role("button", name=f"Load version {newer}").click()
    expect(page.locator("#rules-meta")).to_contain_text(f"Version {newer} · saved by admin")
    expect(page.get_by_label("Rules (YAML)")).to_have_value(theirs)
    expect(conflict).to_be_hidden()
    only_the_refusal_was_reported(watched, 409)


def test_rules_that_do_not_validate_show_each_problem_named_and_nothing_is_saved(
    page: Page, services: Services, watched: Watched, artifacts: Path
) -> None:
    start = current(services)
    open_rules(page)
    expect(page.locator("#rules-meta")).to_contain_text(f"Version {start['version']}")
    broken = start["yaml"].replace("pipelines:\n- 10418746\n", "pipelines:\n- 0\n")
    broken = broken.replace("    - kenesary\n", "    - 7\n")
    assert "- 0\n" in broken and "    - 7\n" in broken
    page.get_by_label("Rules (YAML)").fill(broken)
    page.get_by_role("button", name="Save").click()
    problems = page.locator("#rules-problem-list li")
    expect(problems).to_have_count(2)
    expect(problems.nth(0)).to_contain_text("pipelines[0]: must be a positive integer")
    expect(problems.nth(1)).to_contain_text("traffic.targetologists[0].patterns[1]")
    assert current(services)["version"] == start["version"]
    expect(page.get_by_label("Rules (YAML)")).to_have_value(broken)
    screenshot(page, artifacts / "admin-rules-invalid.png")
    only_the_refusal_was_reported(watched, 400)


def test_on_a_phone_the_rules_page_fits_the_screen(
    browser: Browser, services: Services, watched: Watched, artifacts: Path
) -> None:
    page = open_page(browser, services, watched, viewport={"width": 390, "height": 844},
                     is_mobile=True, has_touch=True, device_scale_factor=2)
    try:
        open_rules(page)
        expect(page.locator("#rules-meta")).to_contain_text("saved by")
        first = page.locator("#rules-history li").first
        first.locator("summary").click()
        expect(first.locator("pre.diff")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, artifacts / "admin-rules-phone.png")
        assert_nothing_ran(watched)
    finally:
        page.context.close()
