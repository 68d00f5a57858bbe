"""`python -m edge.worker`: finishes every event that is not done yet.

Picks pending, partial and failed events whose retry time has come, routes
them again (skipping legs that already succeeded) and records the outcome,
with exponential backoff up to a retry limit. Several workers can run at once:
each claim hides the claimed events from the others for a lease."""

import logging
import signal
import threading
from datetime import timedelta

from amoroute.channels import channel
from amoroute.db import create_engine
from amoroute.logs import setup_logging
from edge.amocrm_form import FormError, LeadEvent, deal_from_event
from edge.dispatch import Dispatcher, Job
from edge.logs import ERROR, DueEvent, Outcome, WebhookLogStore
from edge.settings import Settings

log = logging.getLogger(__name__)


def job_for(event: DueEvent) -> Job | Outcome:
    """The job to route for a claimed event, or the final outcome when its
    stored data cannot become a deal."""
    try:
        deal = deal_from_event(LeadEvent.from_json(event.deal_data))
    except (FormError, KeyError, TypeError, ValueError) as exc:
        return Outcome(event.id, ERROR, error_message=f"stored event cannot be routed: {exc}")
    return Job(event.id, deal, event.done_legs)


class Worker:
    def __init__(
        self, logs: WebhookLogStore, dispatcher: Dispatcher, batch_size: int, timeout_s: float
    ) -> None:
        self.logs = logs
        self.dispatcher = dispatcher
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        # A claim outlives the slowest possible attempt, so no two workers overlap.
        self.lease = timedelta(seconds=timeout_s * 3 + 30)

    def run_once(self) -> int:
        """One pass: claim due events, route them, record outcomes. Returns how many."""
        claimed = self.logs.claim_due(self.batch_size, self.lease)
        if not claimed:
            return 0
        prepared = [job_for(event) for event in claimed]
        failed = [p for p in prepared if isinstance(p, Outcome)]
        if failed:
            self.logs.record_outcomes(failed)
        jobs = [p for p in prepared if isinstance(p, Job)]
        outcomes = self.dispatcher.dispatch(jobs, self.timeout_s)
        log.info(
            "retried events",
            extra={"claimed": len(claimed), "outcomes": [o.status for o in outcomes]},
        )
        return len(claimed)

    def run_until(self, stop: threading.Event, poll_s: float) -> None:
        while not stop.is_set():
            try:
                busy = self.run_once() == self.batch_size
            except Exception:
                log.exception("worker pass failed; trying again")
                busy = False
            if not busy:
                stop.wait(poll_s)


def build(settings: Settings) -> Worker:
    logs = WebhookLogStore(create_engine(settings.edge_database_url))
    return Worker(
        logs,
        Dispatcher(channel(settings.router_addr), logs),
        settings.worker_batch_size,
        settings.worker_route_timeout_s,
    )


def main() -> None:
    settings = Settings()
    setup_logging("edge.worker", settings.log_level)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("worker started", extra={"poll_s": settings.worker_poll_s})
    build(settings).run_until(stop, settings.worker_poll_s)
    log.info("worker stopped")


if __name__ == "__main__":
    main()
