"""Reconciliation: what AmoCRM says happened to deals against what was routed.

AmoCRM sometimes never sends a status hook, and disables a hook after too many
bad answers. Two kinds of pass (RECONCILE_SOURCE):

- `events` (the default): AmoCRM's events log (`GET /api/v4/events`,
  `lead_status_changed`) lists every move into a won status of the configured
  pipelines and every move out of one, since the last checkpoint (minus an
  overlap: AmoCRM's clock and ours differ, and events are written a moment
  late). Each event not handled before (edge_reconciled_events) is compared
  with the lead's logged events: a move into won without a successful routed
  event is routed with the lead's data read from the API (in batches); a move
  out of won that no logged event reversed is routed as a reversal; an event
  older than a logged or listed change the other way is stale (a newer "left
  won" beats an older "won", and the reverse). Both kinds are logged with
  source `reconcile`. This finds a deal won and then moved on, and a reversal
  whose webhook never came.
- `leads`: the won leads of the configured pipelines updated since the last
  checkpoint, each routed when it has no successful event yet. It sees only
  deals *now* won: for accounts whose events log is incomplete.

Either pass checks that the webhook is still registered and enabled. One
pass at a time per event: marking an event handled and logging it is one
transaction, and a second process marking the same event logs nothing.
"""

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from edge.amocrm_api import (
    MAX_EVENTS_PAGE_SIZE,
    AmoCrmBlocked,
    AmoCrmClient,
    AmoCrmError,
    StatusChange,
)
from edge.amocrm_tokens import AmoCrmTokens, build_tokens
from edge.dispatch import Dispatcher, Job
from edge.events import (
    UnroutableEvent,
    log_for_api_lead,
    log_for_status_change,
    log_for_won_change,
)
from edge.log_store import (
    ROUTED_DECISIONS,
    SUCCESS,
    HandledEvent,
    LoggedStatus,
    WebhookLogStore,
)
from edge.settings import Settings

log = logging.getLogger(__name__)

# The periodic run (and its last report, whichever pass), and the leads pass's position.
CHECKPOINT = "reconcile"
# The events pass's position: AmoCRM event time (unix seconds) read up to.
EVENTS_CHECKPOINT = "reconcile_events"
# Until when AmoCRM blocks the integration (unix seconds), for every process.
BLOCKED_CHECKPOINT = "amocrm_blocked"
EVENTS, LEADS = "events", "leads"
BATCH = 250
# A webhook of the same status change carries the lead's last change time, which
# may be a moment off the event's time in AmoCRM's log.
SAME_CHANGE_S = 60
WON, LEFT = "won", "left"
# What the events pass does with an event (edge_reconciled_events.outcome).
ROUTED, BY_WEBHOOK, STALE, MISSING = "routed", "webhook", "stale", "missing"


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
    # Which pass ran: "events" or "leads" (RECONCILE_SOURCE).
    source: str = LEADS
    # The events pass: status changes listed in the window, those not handled before, and
    # what became of them (lead ids): moves into won routed (also in `routed`), moves out
    # of won reversed, events a webhook had handled, stale ones, won leads gone from AmoCRM.
    events_seen: int = 0
    events_new: int = 0
    reversed: list[int] = field(default_factory=list)
    by_webhook: int = 0
    stale: list[int] = field(default_factory=list)
    missing_leads: list[int] = field(default_factory=list)

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
        source: str = EVENTS,
        events_page_size: int = MAX_EVENTS_PAGE_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`clock`: wall time (unix seconds), which AmoCRM's event times are compared with."""
        if source not in (EVENTS, LEADS):
            raise ValueError(f"reconciliation source must be events or leads; got {source!r}")
        self.api = api
        self.logs = logs
        self.dispatcher = dispatcher
        self.subdomain = subdomain
        self.overlap_s = overlap_s
        self.first_lookback_s = first_lookback_s
        self.route_timeout_s = route_timeout_s
        self.source = source
        self.events_page_size = events_page_size
        self.clock = clock

    def run_once(self) -> ReconcileReport:
        """One pass of the configured source; the checkpoint moves only when the whole
        list was read and settled."""
        blocked_until = self.logs.checkpoint(BLOCKED_CHECKPOINT) or 0
        if blocked_until > time.time():
            # Another process met AmoCRM's block: no call until it ends.
            report = ReconcileReport(started_at=time.time(), updated_from=0, source=self.source)
            report.errors.append(
                "AmoCRM blocks the integration (403 after 429s): no reconciliation until "
                f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(blocked_until))}"
            )
            log.warning("reconciliation skipped", extra={"report": report.to_json()})
            return report
        if self.source == EVENTS:
            return self._run_events()
        return self._run_leads()

    def _run_leads(self) -> ReconcileReport:
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

    def _run_events(self) -> ReconcileReport:
        started = self.clock()
        previous = self.logs.checkpoint(EVENTS_CHECKPOINT)
        since = previous if previous is not None else int(started) - self.first_lookback_s
        report = ReconcileReport(
            started_at=started, updated_from=max(since - self.overlap_s, 0), source=EVENTS
        )
        until = int(started)
        blocked = False
        try:
            pipelines, won = self.dispatcher.won_statuses()
            won_pairs = set(itertools.product(pipelines, won))
            changes: dict[str, StatusChange] = {}
            for into in (True, False):
                for change in self.api.iter_status_changes(
                    pipelines, won, report.updated_from, until, into=into,
                    limit=self.events_page_size,
                ):
                    changes.setdefault(change.event_id, change)
            report.events_seen = len(changes)
            report.leads_seen = len({change.lead_id for change in changes.values()})
            done = self.logs.handled_events(list(changes))
            # Oldest first, so the lead's later changes are settled after its earlier ones.
            todo = sorted(
                (c for c in changes.values() if c.event_id not in done),
                key=lambda c: (c.created_at, c.event_id),
            )
            report.events_new = len(todo)
            report.already_routed = len(done)
            by_lead: dict[int, list[StatusChange]] = {}
            for change in todo:
                by_lead.setdefault(change.lead_id, []).append(change)
            for start in range(0, len(todo), BATCH):
                self._settle_changes(todo[start : start + BATCH], by_lead, won_pairs, report)
        except AmoCrmBlocked as exc:
            report.errors.append(str(exc))
            blocked = True
        except AmoCrmError as exc:
            report.errors.append(str(exc))
        except Exception as exc:  # the router or the database: report, keep the checkpoint
            log.exception("reconciliation pass over the events log failed")
            report.errors.append(f"{type(exc).__name__}: {exc}")
        if not blocked:  # no call while AmoCRM blocks us
            self._check_hooks(report)
        report.checkpoint = until if not report.errors else since
        report.duration_ms = int((self.clock() - started) * 1000)
        self.logs.save_checkpoint(EVENTS_CHECKPOINT, report.checkpoint, report.to_json())
        # The last report of either pass lives with the periodic run.
        self.logs.save_checkpoint(
            CHECKPOINT, self.logs.checkpoint(CHECKPOINT) or 0, report.to_json()
        )
        if not report.errors:
            # Events before the next window are never listed again.
            self.logs.prune_handled(report.checkpoint - self.overlap_s - SAME_CHANGE_S)
        log.info("reconciliation pass", extra={"report": report.to_json()})
        return report

    def _settle_changes(
        self,
        changes: list[StatusChange],
        by_lead: dict[int, list[StatusChange]],
        won_pairs: set[tuple[int, int]],
        report: ReconcileReport,
    ) -> None:
        """Route what no webhook did of these events (`by_lead`: every new event of the
        pass, by lead); mark every one handled."""
        history = self.logs.lead_statuses([c.lead_id for c in changes])
        verdicts: list[tuple[StatusChange, str, str]] = []
        for change in changes:
            kind = WON if change.after in won_pairs else LEFT
            verdict = _verdict(
                change, kind, history.get(change.lead_id, []), by_lead[change.lead_id], won_pairs
            )
            verdicts.append((change, kind, verdict))
        wanted = [c.lead_id for c, kind, verdict in verdicts if kind == WON and verdict == ROUTED]
        leads = {int(lead["id"]): lead for lead in self.api.get_leads(wanted)} if wanted else {}
        handled: list[HandledEvent] = []
        deals: dict[str, Any] = {}
        for change, kind, verdict in verdicts:
            new_log = None
            if verdict == ROUTED and kind == WON:
                lead = leads.get(change.lead_id)
                if lead is None:
                    verdict = MISSING
                else:
                    try:
                        new_log, deals[change.event_id] = log_for_won_change(
                            change, lead, self.subdomain, "reconcile"
                        )
                    except UnroutableEvent as exc:
                        report.errors.append(str(exc))
                        continue  # not marked: the next pass tries again
            elif verdict == ROUTED:
                new_log, deals[change.event_id] = log_for_status_change(
                    change, self.subdomain, "reconcile"
                )
            handled.append(
                HandledEvent(
                    change.event_id, change.lead_id, change.created_at, kind, verdict, new_log
                )
            )
        marked = self.logs.record_handled(handled)
        jobs: list[Job] = []
        for h in handled:
            if h.event_id not in marked:
                continue  # another process handled it meanwhile
            log_id = marked[h.event_id]
            if h.outcome == ROUTED and log_id is not None:
                jobs.append(Job(log_id, deals[h.event_id]))
                (report.routed if h.kind == WON else report.reversed).append(h.lead_id)
            elif h.outcome == BY_WEBHOOK:
                report.by_webhook += 1
            elif h.outcome == STALE:
                report.stale.append(h.lead_id)
            elif h.outcome == MISSING:
                report.missing_leads.append(h.lead_id)
        # Logged before routing: what this call does not route, the worker does.
        for out in self.dispatcher.dispatch(jobs, self.route_timeout_s):
            report.outcomes[out.status] = report.outcomes.get(out.status, 0) + 1

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
        block_pause_s=settings.amocrm_block_pause_s,
        on_blocked=lambda pause_s: logs.save_checkpoint(
            BLOCKED_CHECKPOINT,
            int(time.time() + pause_s),
            {"reason": "AmoCRM answered 403 after 429s", "pause_s": pause_s},
        ),
    )
    return Reconciler(
        api,
        logs,
        dispatcher,
        settings.amocrm_domain,
        overlap_s=settings.reconcile_overlap_s,
        first_lookback_s=settings.reconcile_first_lookback_s,
        route_timeout_s=settings.worker_route_timeout_s,
        source=settings.reconcile_source,
    )


def _without_secret(destination: str) -> str:
    """The hook URL without the secret path segment after /webhook/amocrm/."""
    head, sep, tail = destination.partition("/webhook/amocrm/")
    return f"{head}{sep}…" if sep and tail else destination


def _verdict(
    change: StatusChange,
    kind: str,
    logged: list[LoggedStatus],
    listed: list[StatusChange],
    won_pairs: set[tuple[int, int]],
) -> str:
    """What the events pass does with one status change of a lead, given the lead's
    logged events and the changes listed in this pass: BY_WEBHOOK (a logged event did
    it), STALE (a newer change the other way is known: it rules) or ROUTED."""
    at = change.created_at

    def logged_won(status: LoggedStatus) -> bool:
        return (status.pipeline_id, status.status_id) in won_pairs

    # Out of order: a newer logged or listed change the other way beats this one.
    newer_logged = [s for s in logged if (s.lead_updated_at or 0) > at]
    newer_listed = [c for c in listed if (c.created_at, c.event_id) > (at, change.event_id)]
    if kind == WON:
        if any(
            s.processing_status == SUCCESS
            and s.routing_decision in ROUTED_DECISIONS
            and logged_won(s)
            and (s.lead_updated_at is None or s.lead_updated_at >= at - SAME_CHANGE_S)
            for s in logged
        ):
            return BY_WEBHOOK
        if any(not logged_won(s) for s in newer_logged) or any(
            c.after not in won_pairs for c in newer_listed
        ):
            return STALE
        return ROUTED
    if any(
        s.processing_status == SUCCESS
        and s.reversal
        and (s.lead_updated_at or 0) >= at - SAME_CHANGE_S
        for s in logged
    ):
        return BY_WEBHOOK
    if any(logged_won(s) and s.processing_status == SUCCESS for s in newer_logged) or any(
        c.after in won_pairs for c in newer_listed
    ):
        return STALE
    return ROUTED
