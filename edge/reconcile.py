"""Reconciliation: the AmoCRM API's list of won leads against what was routed.

AmoCRM sometimes never sends a status hook, and disables a hook after too many
bad answers. A pass lists the won leads of the configured pipelines updated
since the last checkpoint (minus an overlap, since AmoCRM's clock and ours
differ and pages shift while we read), routes every lead that has no
successful event yet (logged with source `reconcile`), and checks that the
webhook is still registered and enabled.
"""

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from edge.amocrm_api import AmoCrmClient, AmoCrmError
from edge.amocrm_tokens import AmoCrmTokens, build_tokens
from edge.dispatch import Dispatcher, Job
from edge.events import UnroutableEvent, log_for_api_lead
from edge.log_store import WebhookLogStore
from edge.settings import Settings

log = logging.getLogger(__name__)

CHECKPOINT = "reconcile"
BATCH = 250


@dataclass
class ReconcileReport:
    started_at: float
    updated_from: int
    checkpoint: int = 0
    leads_seen: int = 0
    already_routed: int = 0
    routed: list[int] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    hooks: list[dict[str, Any]] = field(default_factory=list)
    hook_disabled: bool = False
    errors: list[str] = field(default_factory=list)
    duration_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Reconciler:
    def __init__(
        self,
        api: AmoCrmClient,
        logs: WebhookLogStore,
        dispatcher: Dispatcher,
        subdomain: str,
        *,
        overlap_s: int = 3600,
        first_lookback_s: int = 7 * 86400,
        route_timeout_s: float = 10.0,
    ) -> None:
        self.api = api
        self.logs = logs
        self.dispatcher = dispatcher
        self.subdomain = subdomain
        self.overlap_s = overlap_s
        self.first_lookback_s = first_lookback_s
        self.route_timeout_s = route_timeout_s

    def run_once(self) -> ReconcileReport:
        """One pass; the checkpoint moves only when the whole list was read."""
        started = time.time()
        previous = self.logs.checkpoint(CHECKPOINT)
        since = previous if previous is not None else int(started) - self.first_lookback_s
        report = ReconcileReport(started_at=started, updated_from=max(since - self.overlap_s, 0))
        newest = since
        try:
            pipelines, won = self.dispatcher.won_statuses()
            batch: list[dict[str, Any]] = []
            for lead in self.api.iter_won_leads(pipelines, won, report.updated_from):
                report.leads_seen += 1
                newest = max(newest, int(lead.get("updated_at") or 0))
                batch.append(lead)
                if len(batch) == BATCH:
                    self._settle(batch, report)
                    batch = []
            self._settle(batch, report)
        except AmoCrmError as exc:
            report.errors.append(str(exc))
        except Exception as exc:  # the router or the database: report, keep the checkpoint
            log.exception("reconciliation pass failed")
            report.errors.append(f"{type(exc).__name__}: {exc}")
        self._check_hooks(report)
        report.checkpoint = newest if not report.errors else since
        report.duration_ms = int((time.time() - started) * 1000)
        self.logs.save_checkpoint(CHECKPOINT, report.checkpoint, report.to_json())
        log.info("reconciliation pass", extra={"report": report.to_json()})
        return report

    def run_from(self, since: int) -> ReconcileReport:
        """One pass over the won leads updated since `since` (unix seconds, minus the
        overlap), e.g. from the moment the webhook was disabled; the checkpoint stays where
        it is, the report becomes the last one."""
        started = time.time()
        report = ReconcileReport(started_at=started, updated_from=max(since - self.overlap_s, 0))
        try:
            pipelines, won = self.dispatcher.won_statuses()
            leads = list(self.api.iter_won_leads(pipelines, won, report.updated_from))
            report.leads_seen = len(leads)
            for start in range(0, len(leads), BATCH):
                self._settle(leads[start : start + BATCH], report)
        except AmoCrmError as exc:
            report.errors.append(str(exc))
        except Exception as exc:  # the router or the database: report it
            log.exception("reconciliation pass failed")
            report.errors.append(f"{type(exc).__name__}: {exc}")
        self._check_hooks(report)
        previous = self.logs.checkpoint(CHECKPOINT)
        report.checkpoint = previous if previous is not None else since
        report.duration_ms = int((time.time() - started) * 1000)
        self.logs.save_checkpoint(CHECKPOINT, report.checkpoint, report.to_json())
        log.info("reconciliation pass from a moment", extra={"report": report.to_json()})
        return report

    def _settle(self, leads: list[dict[str, Any]], report: ReconcileReport) -> None:
        if not leads:
            return
        ids = [int(lead["id"]) for lead in leads if str(lead.get("id", "")).isdigit()]
        done = self.logs.leads_routed(ids)
        report.already_routed += len(done)
        rows, deals = [], []
        for lead in leads:
            if int(lead.get("id") or 0) in done:
                continue
            try:
                row, deal = log_for_api_lead(lead, self.subdomain, "reconcile")
            except UnroutableEvent as exc:
                report.errors.append(str(exc))
                continue
            rows.append(row)
            deals.append(deal)
        if not rows:
            return
        log_ids = self.logs.insert(rows)
        outcomes = self.dispatcher.dispatch(
            [Job(i, d) for i, d in zip(log_ids, deals, strict=True)], self.route_timeout_s
        )
        report.routed += [d.lead_id for d in deals]
        for out in outcomes:
            report.outcomes[out.status] = report.outcomes.get(out.status, 0) + 1

    def _check_hooks(self, report: ReconcileReport) -> None:
        try:
            hooks = self.api.list_webhooks()
        except AmoCrmError as exc:
            report.errors.append(f"webhook registration not checked: {exc}")
            return
        ours = [h for h in hooks if "/webhook/amocrm" in h.destination]
        report.hooks = [
            {"destination": _without_secret(h.destination), "disabled": h.disabled} for h in ours
        ]
        report.hook_disabled = any(h.disabled for h in ours)
        if not ours:
            report.errors.append("no AmoCRM webhook points at /webhook/amocrm: register it")
        if report.hook_disabled:
            log.error(
                "AmoCRM has disabled the webhook: re-enable it in AmoCRM; "
                "reconciliation keeps sales flowing meanwhile"
            )


def build_reconciler(
    settings: Settings,
    logs: WebhookLogStore,
    dispatcher: Dispatcher,
    tokens: AmoCrmTokens | None = None,
) -> Reconciler | None:
    """The reconciler for these settings; None while the AmoCRM API is not configured.
    `tokens`: the process's OAuth token store, when it already has one."""
    if not settings.amocrm_configured():
        return None
    public_host = f"{settings.amocrm_domain}.amocrm.ru" if settings.amocrm_domain else None
    token = tokens or build_tokens(settings, logs.engine)
    api = AmoCrmClient(
        settings.amocrm_base_url(),
        token or settings.amocrm_access_token.get_secret_value(),
        public_host=public_host,
    )
    return Reconciler(
        api,
        logs,
        dispatcher,
        settings.amocrm_domain,
        overlap_s=settings.reconcile_overlap_s,
        first_lookback_s=settings.reconcile_first_lookback_s,
        route_timeout_s=settings.worker_route_timeout_s,
    )


def _without_secret(destination: str) -> str:
    """The hook URL without the secret path segment after /webhook/amocrm/."""
    head, sep, tail = destination.partition("/webhook/amocrm/")
    return f"{head}{sep}…" if sep and tail else destination
