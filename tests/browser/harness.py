"""What the admin UI browser tests share: Debian's Chromium, the running stack's clients,
and pages that record dialogs, console errors and uncaught exceptions."""

from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page

from amoroute.channels import channel
from amoroute.v1 import referral_pb2_grpc, traffic_pb2_grpc
from edge.log_store import WebhookLogStore
from tests.support.stack import RunningStack
from tests.support.waiting import eventually

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ADMIN_TOKEN = "browser-admin-token-0123456789abcdef"
# A named admin (ADMIN_TOKENS): what they change is recorded under their name.
ALICE_TOKEN = "browser-alice-token-0123456789abcdef"
# A targetologist name (from the rules file) that is markup, shown on the dashboards.
XSS_TARGETOLOGIST = "<img src=x onerror=alert(3)>"

# Every browser test module carries this mark: without Debian's Chromium the tests are
# skipped; they never download a browser.
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is not installed (apt install chromium); the admin UI browser tests "
    "use it and never download a browser",
)

class Services:
    """The running stack and clients to drive and check it."""

    def __init__(self, running: RunningStack) -> None:
        self.running = running
        self.http = httpx.Client(base_url=running.edge_url, timeout=10)
        names = ("traffic", "referral", "notifier")
        self.channels = [channel(running.addr(name), running.operator) for name in names]
        # The edge is ready once the router answers; the other services may still be starting.
        for name, ch in zip(names, self.channels, strict=True):
            try:
                grpc.channel_ready_future(ch).result(timeout=30)
            except grpc.FutureTimeoutError:
                for opened in self.channels:
                    opened.close()
                raise RuntimeError(
                    f"{name} is not serving after 30 s; exited: {running.stack.exited()}\n"
                    f"{running.output()[-3000:]}"
                ) from None
        self.traffic = traffic_pb2_grpc.TrafficServiceStub(self.channels[0])
        self.referral = referral_pb2_grpc.ReferralServiceStub(self.channels[1])
        self.engine = sa.create_engine(running.env["EDGE_DATABASE_URL"])
        self.logs = WebhookLogStore(self.engine)

    def webhook(self, body: bytes) -> list[int]:
        reply = self.http.post("/webhook/amocrm", content=body,
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert reply.status_code == 200, reply.text
        log_ids = reply.json()["log_ids"]
        # Events are routed after the answer: wait for each one's first outcome.
        assert eventually(lambda: all(self._tried(i) for i in log_ids)), f"{log_ids} not routed"
        return log_ids

    def _tried(self, log_id: int) -> bool:
        row = self.logs.find(log_id) or {}
        return bool(row.get("processed_at")) or row.get("processing_status") != "pending"

    def close(self) -> None:
        self.http.close()
        for ch in self.channels:
            ch.close()
        self.engine.dispose()


@dataclass
class Watched:
    """What a page did that it must not: dialogs, console errors, uncaught exceptions."""

    dialogs: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)


def open_page(browser: Browser, services: Services, watched: Watched, **context: object) -> Page:
    ctx = browser.new_context(
        base_url=services.running.edge_url,
        locale="en-US",
        timezone_id="UTC",
        **context,  # type: ignore[arg-type]
    )
    ctx.set_default_timeout(10_000)
    page = ctx.new_page()

    def on_dialog(dialog: Dialog) -> None:
        watched.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.console_errors.append(message.text)

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    page.on("pageerror", lambda error: watched.page_errors.append(str(error)))
    return page
