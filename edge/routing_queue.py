"""Routes logged events after their webhook is answered, in batches.

The webhook's answer waits for one durable write only (the log rows). Each
edge process then hands the events to its RoutingQueue: routing threads send
whatever has gathered to the router in one BatchRouteDeals call each, and one
outcome thread records the outcomes of every answered batch in one
transaction, so the outcomes of one batch are written while the next is
routed. The busier the edge, the bigger the batches: when events already
wait as a batch is taken, it lingers a little for more. A batch's round trip
through the router and the services is mostly waiting: when a backlog builds
up behind the batch in flight, a second routing thread sends the next batch
meanwhile (below that, one batch at a time keeps batches big, which is
cheaper for every service).

Nothing here needs to survive a crash: every queued event is already a pending
row with a retry time (INTAKE_LEASE), so an event this process never routes,
because it died or stopped, is routed by the worker; one the queue has no room
for is handed to the worker at once (`on_overflow`)."""

import logging
import queue
import threading
import time
from collections.abc import Callable

from amoroute.process_thread import ProcessThread, take_batch
from edge.dispatch import Dispatcher, Job
from edge.event_lifecycle import Outcome

log = logging.getLogger(__name__)

# Events routed in one batch at most.
MAX_EVENTS_PER_BATCH = 200
# Events left waiting behind a batch just taken that make the second routing
# thread send a batch too.
BACKLOG = MAX_EVENTS_PER_BATCH // 2
# When events wait as a batch is taken (the edge is busy), the batch waits up
# to ROUTING_LINGER_S for GATHER events. An idle edge routes each event at once.
# PERF: a BatchRouteDeals call costs the router and each service far more CPU
# for itself than for each deal it carries, so under load fewer, bigger calls
# leave more CPU for the webhooks; a sale credited a fraction of a second later
# is waited for by nobody; measured by python -m bench.ab and BENCH_QUICK=1 make bench
ROUTING_LINGER_S = 0.2
GATHER = 200
# Outcomes recorded in one transaction at most.
MAX_RECORDED = 1_000
# Events waiting at most (about 3 KiB each); beyond this the worker takes them.
MAX_QUEUED = 5_000


class RoutingQueue:
    def __init__(
        self,
        dispatcher: Dispatcher,
        timeout_s: float,
        on_outcomes: Callable[[list[Outcome]], None] = lambda outcomes: None,
        on_overflow: Callable[[list[int]], None] = lambda log_ids: None,
        max_batch: int = MAX_EVENTS_PER_BATCH,
        max_queued: int = MAX_QUEUED,
        linger_s: float = ROUTING_LINGER_S,
        gather: int = GATHER,
    ) -> None:
        """`timeout_s`: how long the router may take over one batch; `on_overflow`
        gets the log ids of events the queue had no room for; `linger_s` and
        `gather`: see ROUTING_LINGER_S."""
        self.dispatcher = dispatcher
        self.timeout_s = timeout_s
        self.on_outcomes = on_outcomes
        self.on_overflow = on_overflow
        self.max_batch = max_batch
        self.linger_s = linger_s
        self.gather = gather
        self._jobs: queue.Queue[Job | None] = queue.Queue(max_queued)
        # Each routing thread's answered batches, None once that thread stopped.
        self._outcomes: queue.SimpleQueue[list[Outcome] | None] = queue.SimpleQueue()
        self._backlog = threading.Event()
        self._routers = [
            ProcessThread("routing", lambda: self._route_batches(when_backlog=False)),
            ProcessThread("routing-backlog", lambda: self._route_batches(when_backlog=True)),
        ]
        self._recorder = ProcessThread("routing-outcomes", self._record_outcomes)

    def submit(self, jobs: list[Job]) -> int:
        """Queue the jobs for routing; returns how many were queued (the rest,
        when the queue is full, are left to the worker)."""
        for thread in (*self._routers, self._recorder):
            thread.start_once()
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
        """Route what is queued and record the outcomes (within about
        `timeout_s`), then stop the threads."""
        if not self._recorder.running_here():
            return
        deadline = time.monotonic() + timeout_s
        try:
            for _ in self._routers:  # one stop mark for each routing thread
                self._jobs.put(None, timeout=max(0.0, deadline - time.monotonic()))
        except queue.Full:
            return
        self._backlog.set()  # wakes the backlog thread to take its mark
        for router in self._routers:
            assert router.thread is not None
            router.thread.join(max(0.0, deadline - time.monotonic()))
        assert self._recorder.thread is not None
        self._recorder.thread.join(max(0.0, deadline - time.monotonic()))

    def _route_batches(self, when_backlog: bool) -> None:
        while True:
            if when_backlog:
                self._backlog.wait()
                self._backlog.clear()
            busy = not when_backlog and self._jobs.qsize() > 0
            batch = take_batch(
                self._jobs,
                self.max_batch,
                linger_s=self.linger_s if busy else 0.0,
                enough=self.gather,
            )
            if self._jobs.qsize() >= BACKLOG:
                self._backlog.set()
            jobs = [job for job in batch if job is not None]
            if jobs:
                self._route(jobs)
            if stops := len(batch) - len(jobs):  # close() asked to stop
                for _ in range(stops - 1):  # marks meant for the other routing threads
                    self._jobs.put(None)
                self._outcomes.put(None)
                return

    def _route(self, batch: list[Job]) -> None:
        try:
            outcomes = self.dispatcher.route(batch, self.timeout_s)
        except Exception:  # the rows stay pending: the worker routes them after the lease
            log.exception(
                "batch not routed; the worker retries it",
                extra={"log_ids": [job.log_id for job in batch]},
            )
            return
        self._outcomes.put(outcomes)

    def _record_outcomes(self) -> None:
        running = len(self._routers)
        while running:
            answered = take_batch(
                self._outcomes, MAX_RECORDED, lambda outcomes: len(outcomes or [None])
            )
            running -= sum(1 for outcomes in answered if outcomes is None)
            outcomes = [outcome for batch in answered if batch for outcome in batch]
            if outcomes:
                self._record(outcomes)

    def _record(self, outcomes: list[Outcome]) -> None:
        try:
            self.dispatcher.record(outcomes)
        except Exception:  # still pending: the worker routes them again after the lease
            log.exception(
                "outcomes not recorded; the worker routes these events again",
                extra={"log_ids": [outcome.log_id for outcome in outcomes]},
            )
            return
        self.on_outcomes(outcomes)
