"""`python -m edge.worker`: finishes every event that is not done yet, and
reconciles against the AmoCRM API on a schedule.

Picks pending, partial and failed events whose retry time has come, reads the
lead from the AmoCRM API first when the webhook carried no UTM marks (in
batches), routes them again (skipping legs that already succeeded) and records
the outcome, with exponential backoff up to a retry limit. Several workers can
run at once: each claim hides the claimed events from the others for a lease,
and one worker at a time wins each reconciliation run and each retention run
(old settled events removed, partitions managed: edge/retention.py). Between passes it runs the
admin jobs (bulk replay) at their pace, one worker per job (edge/jobs.py)."""

import logging
import signal
import threading
import time
from datetime import timedelta

import prometheus_client

from amoroute.callers import EDGE
from amoroute.channels import channel
from amoroute.db import create_engine
from amoroute.heap import freeze_startup_objects
from amoroute.logging_setup import setup_logging
from amoroute.metrics import serve_metrics
from amoroute.timeutil import now
from amoroute.tracing import setup_tracing
from amoroute.tracing import shutdown as tracing_shutdown
from edge.amocrm_api import AmoCrmBlocked, AmoCrmError
from edge.dispatch import Dispatcher, Job
from edge.event_lifecycle import ERROR, PENDING, Outcome
from edge.hook_health import InvalidAnswerStore, note_hook_state
from edge.job_store import JobStore
from edge.jobs import JobRunner
from edge.log_store import DueEvent, WebhookLogStore
from edge.reconcile import BLOCKED_CHECKPOINT, CHECKPOINT, Reconciler, build_reconciler
from edge.replay import job_for
from edge.retention import CHECKPOINT as RETENTION_CHECKPOINT
from edge.retention_store import RetentionStore
from edge.settings import Settings

log = logging.getLogger("edge.worker")

# How often the backlog is counted for amoroute_pending_events; Prometheus
# scrapes every 15-30 s.
# PERF: the count reads every entry of the index of waiting events, and every
# event routed since the last VACUUM left a dead one there, so a count costs
# more the busier the edge; measured by make bench (postgres server CPU)
PENDING_COUNT_EVERY_S = 15.0
PENDING_EVENTS = prometheus_client.Gauge(
    "amoroute_pending_events", "Events waiting for their first outcome or a retry."
)
HOOK_DISABLED = prometheus_client.Gauge(
    "amoroute_amocrm_hook_disabled", "1 when AmoCRM reports our webhook disabled."
)
INVALID_ANSWERS = prometheus_client.Gauge(
    "amoroute_webhook_invalid_answers_2h",
    "Webhook answers AmoCRM counts invalid over the last 2 hours, every edge process together, "
    "by cause: the status answered, or slow (over 2 s). AmoCRM disables the hook above 100.",
    ["cause"],
)


class Worker:
    def __init__(
        self,
        logs: WebhookLogStore,
        dispatcher: Dispatcher,
        batch_size: int,
        timeout_s: float,
        subdomain: str = "",
        reconciler: Reconciler | None = None,
        reconcile_every: timedelta = timedelta(minutes=5),
        jobs: JobRunner | None = None,
        retention: RetentionStore | None = None,
        retention_every: timedelta = timedelta(hours=1),
    ) -> None:
        self.logs = logs
        self.dispatcher = dispatcher
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.subdomain = subdomain
        self.reconciler = reconciler
        self.reconcile_every = reconcile_every
        self.jobs = jobs
        self.retention = retention
        self.retention_every = retention_every
        self.invalid_answers = InvalidAnswerStore(logs.engine)
        self.invalid_causes: set[str] = set()  # causes the metric has shown
        # A claim outlives the slowest possible attempt, so no two workers overlap.
        self.lease = timedelta(seconds=timeout_s * 3 + 30)

    def run_once(self) -> int:
        """One pass: claim due events, route them, record outcomes. Returns how many."""
        claimed = self.logs.claim_due(self.batch_size, self.lease)
        if not claimed:
            return 0
        finished = self._fetch_lead_data([e for e in claimed if e.awaiting_lead_data])
        jobs: list[Job] = []
        for event in claimed:
            if event.id in finished:
                continue
            prepared = job_for(event, self.subdomain)
            if isinstance(prepared, Outcome):
                finished[event.id] = prepared
            else:
                jobs.append(prepared)
        if finished:
            self.logs.record_outcomes(list(finished.values()))
        outcomes = self.dispatcher.dispatch(jobs, self.timeout_s)
        log.info(
            "retried events",
            extra={"claimed": len(claimed), "outcomes": [o.status for o in outcomes]},
        )
        return len(claimed)

    def _fetch_lead_data(self, events: list[DueEvent]) -> dict[int, Outcome]:
        """Read the leads of `events` from the API in batches and keep the data with
        each event; returns the outcomes of events that cannot go on now."""
        if not events:
            return {}
        if self.reconciler is None:
            return {
                e.id: Outcome(e.id, ERROR, error_message="AmoCRM API not configured")
                for e in events
            }
        try:
            blocked_until = self.logs.checkpoint(BLOCKED_CHECKPOINT) or 0
            if blocked_until > time.time():  # another process met AmoCRM's block
                raise AmoCrmBlocked(
                    "AmoCRM blocks the integration (403 after 429s): the lead is read once "
                    "the block ends",
                    blocked_until - time.time(),
                )
            leads = self.reconciler.api.get_leads([e.lead_id for e in events if e.lead_id])
        except AmoCrmError as exc:
            return {
                e.id: Outcome(
                    e.id, PENDING, error_message=str(exc), retry=True, awaiting_lead_data=True
                )
                for e in events
            }
        by_id = {int(lead["id"]): lead for lead in leads}
        outcomes = {}
        for event in events:
            lead = by_id.get(event.lead_id or 0)
            if lead is None:
                outcomes[event.id] = Outcome(
                    event.id,
                    ERROR,
                    error_message=f"lead {event.lead_id} is not in AmoCRM (deleted?)",
                )
                continue
            event.deal_data.update(api_lead=lead, account_subdomain=self.subdomain)
            self.logs.attach_api_lead(event.id, event.deal_data)
        return outcomes

    def reconcile_if_due(self) -> None:
        if self.reconciler and self.logs.claim_periodic_run(CHECKPOINT, self.reconcile_every):
            previous = self.logs.last_report(CHECKPOINT)
            report = self.reconciler.run_once()
            HOOK_DISABLED.set(1 if report.hook_disabled else 0)
            if report.hooks or report.hook_disabled:  # else the check failed: nothing learnt
                note_hook_state(self.logs, report.hook_disabled, previous, report.started_at)

    def count_invalid_answers(self) -> None:
        """amoroute_webhook_invalid_answers_2h from the counts every edge process adds to."""
        by_cause = self.invalid_answers.recent()
        # A cause gone from the window shows 0 (clear() is not available when the
        # metrics are kept for several processes, as under gunicorn).
        self.invalid_causes |= set(by_cause)
        for cause in self.invalid_causes:
            INVALID_ANSWERS.labels(cause=cause).set(by_cause.get(cause, 0))

    def retain_if_due(self) -> bool:
        """Run webhook_logs retention when its interval has passed; one worker of
        several wins each run (the run's time is claimed in edge_checkpoints). True
        when this worker ran it."""
        if self.retention is None or not self.logs.claim_periodic_run(
            RETENTION_CHECKPOINT, self.retention_every
        ):
            return False
        moment = now()
        report = self.retention.run(moment)
        summary = {**report.as_json(), "at": moment.isoformat()}
        self.logs.save_checkpoint(RETENTION_CHECKPOINT, report.deleted, summary)
        # Under a key of its own: the report's "created" is a LogRecord attribute.
        log.info("retention run", extra={"retention": summary})
        return True

    def run_until(self, stop: threading.Event, poll_s: float) -> None:
        counted_at = float("-inf")
        while not stop.is_set():
            try:
                busy = self.run_once() == self.batch_size
                if time.monotonic() - counted_at >= max(poll_s, PENDING_COUNT_EVERY_S):
                    PENDING_EVENTS.set(self.logs.pending_count())
                    self.count_invalid_answers()
                    counted_at = time.monotonic()
                self.reconcile_if_due()
                self.retain_if_due()
            except Exception:
                log.exception("worker pass failed; trying again")
                busy = False
            wait_s = self.run_jobs()
            if not busy:
                stop.wait(poll_s if wait_s is None else min(poll_s, wait_s))
        if self.jobs is not None:
            try:
                self.jobs.release()
            except Exception:
                # Unreleased, the job waits for its lease to end before another worker resumes it.
                log.exception("job not released")

    def run_jobs(self) -> float | None:
        """The next chunk of the admin job this worker holds (bulk replay), if due;
        returns the seconds until the following one (None: no job held)."""
        if self.jobs is None:
            return None
        try:
            self.jobs.run_once()
        except Exception:
            log.exception("job chunk failed; trying again")
        return self.jobs.wait_s()


def build(settings: Settings) -> Worker:
    logs = WebhookLogStore(
        create_engine(settings.edge_database_url, settings.db_pool_size, settings.db_max_overflow)
    )
    dispatcher = Dispatcher(
        channel(settings.router_addr, settings.caller_credentials(EDGE)),
        logs,
        lead_data_available=settings.amocrm_configured(),
    )
    reconciler = build_reconciler(settings, logs, dispatcher)
    jobs = JobRunner(
        JobStore(logs.engine),
        logs,
        dispatcher,
        settings.worker_route_timeout_s,
        settings.bulk_replay_rate,
        settings.amocrm_domain,
    )
    return Worker(
        logs,
        dispatcher,
        settings.worker_batch_size,
        settings.worker_route_timeout_s,
        settings.amocrm_domain,
        reconciler,
        timedelta(seconds=settings.reconcile_interval_s),
        jobs,
        RetentionStore(logs.engine, settings.retention()),
        timedelta(seconds=settings.retention_interval_s),
    )


def main() -> None:
    settings = Settings()
    setup_logging("edge.worker", settings.log_level, settings.secret_values())
    setup_tracing("edge-worker", settings)  # before build: its engine and channel are traced
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    worker = build(settings)
    if worker.reconciler is None:
        log.warning(
            "the AmoCRM API is not configured (AMOCRM_DOMAIN, and AMOCRM_ACCESS_TOKEN or the "
            "AMOCRM_CLIENT_* OAuth settings): no lead fetch, no reconciliation"
        )
    serve_metrics(settings.metrics_port, settings.bind_host)
    freeze_startup_objects()
    log.info("worker started", extra={"poll_s": settings.worker_poll_s})
    worker.run_until(stop, settings.worker_poll_s)
    log.info("worker stopped")
    tracing_shutdown()


if __name__ == "__main__":
    main()
