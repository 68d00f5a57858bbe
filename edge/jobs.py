"""Long admin jobs, run by the worker in chunks: bulk replay and re-attribution. No HTTP.

A job is created queued with its request (the filters), the newest log id at that moment
(`until_id`: events logged later are not part of it) and the number of events it covers
(`total`). A worker claims it with a lease and works from its cursor: each chunk's new
`replay` logs and the job's cursor and counts commit in one transaction, conditional on the
worker still holding the running job, so an interrupted or cancelled job neither skips nor
repeats an event and its counts are exact. The chunk is then routed; what the router does
not finish stays pending for the worker's retries, as a single replay does.

`done` counts the events replayed (logged again and routed, or left to the retries),
`failed` those whose stored data cannot become a deal (they cannot be replayed).

A re-attribution job (edge/reattribution_apply.py) walks the leads in range instead, its
cursor the last lead id read; `total` is the number of changes the preview counted when
it started, `done` the deals it re-routed, each with a new `reattribution` log."""

import dataclasses
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from amoroute.timeutil import utc
from edge.dispatch import Dispatcher, Job
from edge.event_lifecycle import Outcome
from edge.job_store import CANCELLED, DONE, FAILED, UNFINISHED, JobRow, JobStore
from edge.log_store import DueEvent, LogQuery, NewLog, WebhookLogStore
from edge.reattribution import Preview
from edge.reattribution_apply import PAST_LAST_LEAD, explain_against, plan_chunk
from edge.replay import REATTRIBUTION, job_for, replay_log

log = logging.getLogger(__name__)

REPLAY = "replay"
KINDS = (REPLAY, REATTRIBUTION)
# The most events one chunk takes, whatever the rate.
MAX_CHUNK = 1000
# A job failing this many chunks in a row is given up, with the last error.
MAX_CHUNK_ERRORS = 5


class NothingToReplay(Exception):
    """No stored event matches the filters."""


class NotCancellable(Exception):
    """The job has finished already."""

    def __init__(self, job: JobRow) -> None:
        super().__init__(f"job {job.id} is {job.state} already")
        self.job = job


def filters_json(query: LogQuery) -> dict[str, Any]:
    """The filters of `query` as a job's request keeps them."""
    return {
        "status": list(query.statuses),
        "routing": list(query.decisions),
        "lead_id": query.lead_id,
        "source": query.source,
        "q": query.text,
        "received_from": _iso(query.received_from),
        "received_to": _iso(query.received_to),
    }


def query_of(filters: dict[str, Any]) -> LogQuery:
    """The LogQuery of filters kept by filters_json()."""
    return LogQuery(
        statuses=tuple(filters.get("status") or ()),
        decisions=tuple(filters.get("routing") or ()),
        lead_id=filters.get("lead_id"),
        source=filters.get("source"),
        text=filters.get("q"),
        received_from=_moment(filters.get("received_from")),
        received_to=_moment(filters.get("received_to")),
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else utc(value).isoformat()


def _moment(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def count_matching(logs: WebhookLogStore, query: LogQuery) -> int:
    """How many stored events a bulk replay with these filters would replay now."""
    return logs.count_matching(query)


def start_replay(jobs: JobStore, logs: WebhookLogStore, admin: str, query: LogQuery) -> JobRow:
    """Queue a bulk replay of the events matching `query` now. NothingToReplay when none
    does: a job of nothing is refused rather than run."""
    until_id = logs.max_id()
    total = logs.count_matching(query, until_id)
    if total == 0:
        raise NothingToReplay()
    job = jobs.create(REPLAY, admin, {"filters": filters_json(query)}, until_id, total)
    log.info(
        "bulk replay started",
        extra={"job_id": job.id, "admin": admin, "total": total, "until_id": until_id},
    )
    return job


@dataclass(frozen=True)
class RulesChange:
    """The rules version a re-attribution moves from (its YAML kept for the job) and
    the one it stored."""

    from_version: int
    previous_yaml: str
    to_version: int


def start_reattribution(
    jobs: JobStore,
    logs: WebhookLogStore,
    admin: str,
    query: LogQuery,
    change: RulesChange,
    announce: bool,
    preview: Preview,
) -> JobRow:
    """Queue the re-attribution of the won deals `query` selects from the previous rules
    to the ones just stored; `preview` is what the candidate changed when it was asked."""
    request = {
        "filters": filters_json(query),
        "from_version": change.from_version,
        "to_version": change.to_version,
        "previous_yaml": change.previous_yaml,
        "announce": announce,
        "preview": {
            "events": preview.events,
            "changed": preview.changed,
            "skipped": preview.skipped,
            "totals": preview.totals(),
        },
        "changes": {},
    }
    job = jobs.create(REATTRIBUTION, admin, request, logs.max_id(), preview.changed)
    log.info(
        "re-attribution started",
        extra={"job_id": job.id, "admin": admin, "total": job.total,
               "from_version": change.from_version, "to_version": change.to_version},
    )
    return job


def cancel(jobs: JobStore, job_id: int, admin: str) -> JobRow:
    """Cancel a queued or running job. LookupError: no such job; NotCancellable: it has
    finished (done, failed or cancelled) already."""
    before = jobs.get(job_id)
    if before is None:
        raise LookupError(job_id)
    if before.state not in UNFINISHED:
        raise NotCancellable(before)
    after = jobs.cancel(job_id)
    assert after is not None  # jobs are never deleted
    if after.state != CANCELLED:  # it finished in between
        raise NotCancellable(after)
    log.info("job cancelled", extra={"job_id": job_id, "admin": admin, "kind": after.kind})
    return after


class LostJob(Exception):
    """This worker no longer holds the job (cancelled, or its lease was taken over)."""


def worker_name() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobRunner:
    """The worker's side: holds at most one job and runs a chunk of it whenever its pace
    allows (`rate` events per second, so live webhooks keep their latency)."""

    def __init__(
        self,
        jobs: JobStore,
        logs: WebhookLogStore,
        dispatcher: Dispatcher,
        timeout_s: float,
        rate: float,
        subdomain: str = "",
        name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        lease: timedelta | None = None,
    ) -> None:
        self.jobs = jobs
        self.logs = logs
        self.dispatcher = dispatcher
        self.timeout_s = timeout_s
        self.rate = rate
        self.chunk_size = max(1, min(MAX_CHUNK, int(rate)))
        self.subdomain = subdomain
        self.name = name or worker_name()
        self.clock = clock
        # Outlives the slowest chunk (its routing deadline) and the pause after it.
        self.lease = lease or timedelta(seconds=timeout_s * 3 + self.chunk_size / rate + 30)
        self.current: JobRow | None = None
        self.next_chunk_at = float("-inf")
        self.errors = 0

    def wait_s(self) -> float | None:
        """Seconds until the next chunk is due; None when holding no job."""
        if self.current is None:
            return None
        return max(0.0, self.next_chunk_at - self.clock())

    def release(self) -> None:
        """On a graceful stop: hand the job held to the next worker now, not after the lease."""
        if self.current is not None:
            self.jobs.release(self.current.id, self.name)
            log.info("job released", extra={"job_id": self.current.id})
            self.current = None

    def run_once(self) -> int:
        """Claim a job if holding none; run its next chunk if due. Returns how many
        events the chunk handled."""
        if self.current is None:
            self.current = self.jobs.claim(self.name, self.lease)
            if self.current is None:
                return 0
            log.info(
                "job claimed",
                extra={"job_id": self.current.id, "kind": self.current.kind,
                       "cursor": self.current.cursor},
            )
            self.next_chunk_at = float("-inf")
        if self.clock() < self.next_chunk_at:
            return 0
        job = self.current
        started = self.clock()
        try:
            handled = self._chunk(job)
        except LostJob:
            log.info("job no longer held", extra={"job_id": job.id})
            self.current = None
            return 0
        except Exception as exc:
            self.errors += 1
            self.next_chunk_at = started + 1.0
            if self.errors >= MAX_CHUNK_ERRORS:
                log.exception("job failed", extra={"job_id": job.id})
                self.jobs.finish(job.id, self.name, FAILED, error=str(exc)[:1000])
                self.current = None
                return 0
            raise
        self.errors = 0
        # PERF: a pause after each chunk keeps the replay's load to `rate` events/s,
        # so live webhooks keep their ack latency; measured by python -m bench.bulk_replay
        self.next_chunk_at = started + handled / self.rate
        return handled

    def _finish_done(self, job: JobRow) -> int:
        """Mark the job done (LostJob when this worker no longer holds it); nothing handled."""
        if not self.jobs.finish(job.id, self.name, DONE):
            raise LostJob()
        log.info("job done", extra={"job_id": job.id, "done": job.done, "failed": job.failed})
        self.current = None
        return 0

    def _chunk(self, job: JobRow) -> int:
        if job.kind == REATTRIBUTION:
            return self._reattribution_chunk(job)
        query = query_of(job.request["filters"])
        rows = self.logs.next_matching(query, job.cursor, job.until_id, self.chunk_size)
        if not rows:
            return self._finish_done(job)
        new_logs: list[NewLog] = []
        prepared: list[Job] = []
        for row in rows:
            to_route = job_for(
                DueEvent(row["id"], row["source"], row["deal_data"], ()), self.subdomain
            )
            if isinstance(to_route, Outcome):
                continue
            new_logs.append(replay_log(row))
            prepared.append(to_route)
        failed = len(rows) - len(new_logs)
        cursor = rows[-1]["id"]
        with self.logs.engine.begin() as conn:
            new_ids = self.logs.insert_on(conn, new_logs) if new_logs else []
            if not self.jobs.record_chunk(
                conn, job.id, self.name, cursor, len(new_logs), failed, self.lease
            ):
                # Rolls back the chunk's new logs: cancelled means none of it happens.
                raise LostJob()
        self.current = dataclasses.replace(
            job, cursor=cursor, done=job.done + len(new_logs), failed=job.failed + failed
        )
        routed = [dataclasses.replace(p, log_id=i) for p, i in zip(prepared, new_ids, strict=True)]
        try:
            self.dispatcher.dispatch(routed, self.timeout_s)
        except SQLAlchemyError:
            # The replays are logged as pending: the worker's retries finish them.
            log.exception("bulk replay outcomes not recorded", extra={"job_id": job.id})
        return len(rows)

    def _reattribution_chunk(self, job: JobRow) -> int:
        """The next leads of a re-attribution: those whose credit changes are logged
        again (source `reattribution`) and re-routed; the logs, the cursor (the last lead
        read) and the counts commit together, as a replay chunk's."""
        request = job.request
        query = query_of(request["filters"])
        if job.cursor >= PAST_LAST_LEAD:
            return self._finish_done(job)
        events, after = self.logs.newest_won_per_lead(query, job.cursor, self.chunk_size)
        # A lead's event logged after the job started was routed under the new rules.
        events = [e for e in events if e.id <= job.until_id]
        why = {
            "job_id": job.id,
            "by": job.created_by,
            "from_version": request["from_version"],
            "to_version": request["to_version"],
        }
        chunk = plan_chunk(
            events,
            explain_against(self.dispatcher.router, request["previous_yaml"]),
            request["to_version"],
            why,
            bool(request.get("announce")),
            self.subdomain,
        )
        cursor = PAST_LAST_LEAD if after is None else after
        # The counts per kind of change ride in the request: only the job's holder
        # writes it, conditionally, with the cursor.
        changes = dict(request.get("changes") or {})
        for kind, count in chunk.kinds.items():
            changes[kind] = changes.get(kind, 0) + count
        progressed = {**request, "changes": changes}
        with self.logs.engine.begin() as conn:
            new_ids = self.logs.insert_on(conn, chunk.logs) if chunk.logs else []
            if not self.jobs.record_chunk(
                conn, job.id, self.name, cursor, len(chunk.logs), chunk.failed, self.lease,
                request=progressed,
            ):
                raise LostJob()
        self.current = dataclasses.replace(
            job,
            cursor=cursor,
            done=job.done + len(chunk.logs),
            failed=job.failed + chunk.failed,
            request=progressed,
        )
        routed = [
            dataclasses.replace(p, log_id=i) for p, i in zip(chunk.jobs, new_ids, strict=True)
        ]
        try:
            self.dispatcher.dispatch(routed, self.timeout_s)
        except SQLAlchemyError:
            log.exception("re-attribution outcomes not recorded", extra={"job_id": job.id})
        # Paced by the leads read, the router's work for the chunk.
        return max(1, len(events))
