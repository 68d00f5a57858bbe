"""The edge app in-process (falcon.testing.TestClient) on a migrated database, and a
seeder that writes webhook logs the way the edge does."""

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any

import falcon.testing
import sqlalchemy as sa

from edge.__main__ import upgrade_database
from edge.amocrm_form import FormLimits
from edge.app import create_app
from edge.event_lifecycle import Outcome
from edge.log_store import WebhookLogStore, webhook_logs
from edge.settings import Settings
from edge.webhook import intake
from tests.support.forms import encode, won_deal_body

TOKEN = "admin-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def migrated_edge_database(make_database: Callable[[str], str]) -> str:
    url = make_database("edge")
    upgrade_database(Settings(edge_database_url=url))
    return url


def admin_client(database_url: str, **settings: Any) -> falcon.testing.TestClient:
    """The real app; the router, referral and traffic addresses default to nothing."""
    settings = {"admin_token": TOKEN, "router_addr": "127.0.0.1:9", "referral_addr":
                "127.0.0.1:9", "traffic_addr": "127.0.0.1:9", **settings}
    return falcon.testing.TestClient(create_app(Settings(edge_database_url=database_url,
                                                         **settings)))


class Seeder:
    """Writes webhook logs the way the edge does (intake, outcomes) and can backdate them."""

    def __init__(self, database_url: str) -> None:
        self.engine = sa.create_engine(database_url)
        self.store = WebhookLogStore(self.engine)

    def deal(
        self,
        lead_id: int,
        utm_source: str = "",
        utm_campaign: str = "",
        *,
        name: str = "",
        status: str = "success",
        decision: str | None = "traffic",
        error: str | None = None,
        source: str = "amocrm",
        processing_ms: int | None = None,
        received_at: datetime | None = None,
    ) -> int:
        """One logged lead event with its outcome; returns the log id."""
        body = encode(won_deal_body(lead_id, utm_source, utm_campaign, name=name))
        [row], _ = intake(body, FORM["Content-Type"], FormLimits())
        [log_id] = self.store.insert([dataclasses.replace(row, source=source)])
        if status != "pending" or error:
            self.store.record_outcomes([
                Outcome(log_id, status, decision=decision, utm_source=utm_source or None,
                        utm_campaign=utm_campaign or None, error_message=error)
            ])
        self.set(log_id, processing_ms=processing_ms, received_at=received_at)
        return log_id

    def set(self, log_id: int, **values: Any) -> None:
        values = {k: v for k, v in values.items() if v is not None}
        if values:
            with self.engine.begin() as conn:
                conn.execute(sa.update(webhook_logs).where(webhook_logs.c.id == log_id)
                             .values(**values))

    def close(self) -> None:
        self.engine.dispose()
