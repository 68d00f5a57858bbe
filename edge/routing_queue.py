"""Routes logged events after their webhook is answered, in batches.

The webhook's answer waits for one durable write only (the log rows). Each
edge process then hands the events to its RoutingQueue, whose thread sends
whatever has gathered to the router in one BatchRouteDeals call and records
the outcomes in one transaction: the busier the edge, the bigger the batches.

Nothing here needs to survive a crash: every queued event is already a pending
row with a retry time (INTAKE_LEASE), so an event this process never routes,
because it died or stopped, is routed by the worker; one the queue has no room
for is handed to the worker at once (`on_overflow`)."""

import logging
import queue
from collections.abc import Callable

from edge.dispatch import Dispatcher, Job
from edge.logs import Outcome
from edge.process_thread import ProcessThread, take_batch

log = logging.getLogger(__name__)

# Events routed in one batch at most.
MAX_BATCH = 200
# Events waiting at most (about 3 KiB each); beyond this the worker takes them.
MAX_QUEUED = 5_000


class RoutingQueue:
    def __init__(
        self,
        dispatcher: Dispatcher,
        timeout_s: float,
        on_outcomes: Callable[[list[Outcome]], None] = lambda outcomes: None,
        on_overflow: Callable[[list[int]], None] = lambda log_ids: None,
        max_batch: int = MAX_BATCH,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        """`timeout_s`: how long the router may take over one batch; `on_overflow`
        gets the log ids of events the queue had no room for."""
        self.dispatcher = dispatcher
        self.timeout_s = timeout_s
        self.on_outcomes = on_outcomes
        self.on_overflow = on_overflow
        self.max_batch = max_batch
        self._jobs: queue.Queue[Job | None] = queue.Queue(max_queued)
        self._thread = ProcessThread("routing-queue", self._run)

    def submit(self, jobs: list[Job]) -> int:
        """Queue the jobs for routing; returns how many were queued (the rest,
        when the queue is full, are left to the worker)."""
        self._thread.start_once()
        for queued, job in enumerate(jobs):
            try:
                self._jobs.put_nowait(job)
            except queue.Full:
                left = [j.log_id for j in jobs[queued:]]
                log.warning(
                    "routing queue full; the worker routes these events",
                    extra={"log_ids": left},
                )
                try:
                    self.on_overflow(left)
                except Exception:  # still leased: the worker takes them after the lease
                    log.exception("could not hand the events to the worker now")
                return queued
        return len(jobs)

    def close(self, timeout_s: float = 5.0) -> None:
        """Route what is queued (within `timeout_s`) and stop the thread."""
        if not self._thread.running_here():
            return
        try:
            self._jobs.put(None, timeout=timeout_s)
        except queue.Full:
            return
        assert self._thread.thread is not None
        self._thread.thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            batch = take_batch(self._jobs, self.max_batch)
            jobs = [job for job in batch if job is not None]
            if jobs:
                self._route(jobs)
            if len(jobs) < len(batch):  # close() asked to stop
                return

    def _route(self, batch: list[Job]) -> None:
        try:
            outcomes = self.dispatcher.dispatch(batch, self.timeout_s)
        except Exception:  # the rows stay pending: the worker routes them after the lease
            log.exception(
                "batch not routed; the worker retries it",
                extra={"log_ids": [job.log_id for job in batch]},
            )
            return
        self.on_outcomes(outcomes)
