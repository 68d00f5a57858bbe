"""webhook_logs: the record of every event; the only edge module that writes SQL."""

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from amoroute.db import (
    DriverStatement,
    JsonColumn,
    insert_from_json,
    insert_ignoring_conflicts,
    insert_ignoring_conflicts_returning,
    is_postgres,
    json_rows,
)
from amoroute.timeutil import now, utc
from edge.event_lifecycle import (
    DONE_LEGS,
    ERROR,
    INTAKE_LEASE,
    PARTIAL,
    PENDING,
    RETRIES,
    SUCCESS,
    LogState,
    Outcome,
    next_state,
)
from edge.flow_series import Bucket, Buckets, percentile_cont

metadata = sa.MetaData()

webhook_logs = sa.Table(
    "webhook_logs",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source", sa.String(20), nullable=False),
    sa.Column("event", sa.String(20)),
    sa.Column("account_id", sa.BigInteger),
    sa.Column("pipeline_id", sa.BigInteger),
    sa.Column("status_id", sa.BigInteger),
    sa.Column("lead_id", sa.BigInteger),
    sa.Column("lead_updated_at", sa.BigInteger),
    sa.Column("deal_data", JsonColumn, nullable=False),
    sa.Column("utm_source", sa.Text),
    sa.Column("utm_campaign", sa.Text),
    sa.Column("routing_decision", sa.String(20)),
    sa.Column("processing_status", sa.String(20), nullable=False),
    sa.Column("error_message", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("processing_ms", sa.Integer),
    sa.Column("processed_at", sa.DateTime(timezone=True)),
    sa.Column("legs", JsonColumn),
    sa.Column("retry_at", sa.DateTime(timezone=True)),
    sa.Column("deal_name", sa.Text),
    sa.Column("replay_of", sa.BigInteger),
    sa.Column("attempt_started_at", sa.DateTime(timezone=True)),
    # A won deal that came without UTM marks: the worker reads it from the AmoCRM API.
    sa.Column("awaiting_lead_data", sa.Boolean, nullable=False, server_default=sa.false()),
    # The W3C trace context of the webhook that logged the event (NULL: not traced).
    sa.Column("traceparent", sa.String(64)),
    # Why the router decided as it did, stored with the outcome: {"reason", and when
    # found "referral_code", "targetologist"} (NULL: not routed yet).
    sa.Column("route", JsonColumn),
    # The webhook request that brought the event: {"request_id", "content_type",
    # "user_agent"} (NULL: not a webhook, or logged before these were kept).
    sa.Column("request", JsonColumn),
)

# Where each periodic job (reconciliation) got to, and what its last run found.
checkpoints = sa.Table(
    "edge_checkpoints",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("position", sa.BigInteger),
    sa.Column("last_run_at", sa.DateTime(timezone=True)),
    sa.Column("last_report", JsonColumn),
)

# AmoCRM status-change events the reconciliation has handled (edge/reconcile.py).
reconciled_events = sa.Table(
    "edge_reconciled_events",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("lead_id", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("log_id", sa.BigInteger),
    sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
)

# One row per processing attempt of a log, written with the outcome it records.
webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column(
        "log_id",
        sa.BigInteger,
        sa.ForeignKey("webhook_logs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("routing_decision", sa.String(20)),
    sa.Column("error_message", sa.Text),
    sa.Column("legs", JsonColumn),
    sa.Column("duration_ms", sa.Integer),
    # The log's received_at: on PostgreSQL the attempts are partitioned by it, as their
    # logs are, so retention drops a month of both at once.
    sa.Column("log_received_at", sa.DateTime(timezone=True)),
)

# The routing decisions of a won deal (every other event is "ignored" or undecided).
ROUTED_DECISIONS = ("referral", "traffic", "both", "unknown")

_INSERT = sa.insert(webhook_logs).returning(webhook_logs.c.id, sort_by_parameter_order=True)


# What an outcome needs to know of its log, locked (SQLite).
_BEFORE_OUTCOME = (
    sa.select(
        webhook_logs.c.id,
        webhook_logs.c.received_at,
        webhook_logs.c.attempts,
        webhook_logs.c.legs,
        webhook_logs.c.route,
        webhook_logs.c.attempt_started_at,
        webhook_logs.c.routing_decision,
        webhook_logs.c.utm_source,
        webhook_logs.c.utm_campaign,
    )
    .order_by(webhook_logs.c.id)
    .with_for_update()
)
# One log's outcome, executed for every row (SQLite).
_RECORD_OUTCOME = sa.update(webhook_logs).where(webhook_logs.c.id == sa.bindparam("log_id"))

# PostgreSQL: every outcome of a batch in one statement, which restates
# event_lifecycle.next_state() (tests/edge/test_event_lifecycle_parity.py feeds
# one table of cases through both and fails on any difference), its backoff and
# give-up count passed in from event_lifecycle.RETRIES.
# The UPDATE locks and rewrites each log, and its RETURNING feeds the attempt
# rows. The UPDATE's own row locks serialise two outcomes of one log (the second
# re-reads `attempts` once the first commits), so attempt numbers stay unique.
# The rows come sorted by log id, so concurrent batches lock their logs in the
# same order.
# PERF: one statement instead of a SELECT ... FOR UPDATE and a write per log, and
# planned at each run (a plan prepared while webhook_logs was small kept a
# sequential scan as the table grew); measured by python -m bench.ab
_PG_RECORD_OUTCOMES = DriverStatement(sa.text(
    """
WITH o AS (
  SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS o(
    log_id bigint, status varchar(20), decision varchar(20), utm_source text,
    utm_campaign text, error_message text, retry boolean, legs jsonb,
    awaiting_lead_data boolean, route jsonb)
), done AS (
  UPDATE webhook_logs w SET
    attempts = w.attempts + 1,
    processing_status = o.status,
    error_message = CASE WHEN o.retry AND w.attempts + 1 >= :max_attempts
      THEN concat_ws(' ', NULLIF(o.error_message, ''),
        '(gave up after ' || (w.attempts + 1) || ' attempts)')
      ELSE o.error_message END,
    legs = NULLIF(COALESCE(w.legs, CAST('{}' AS jsonb)) || o.legs, CAST('{}' AS jsonb)),
    retry_at = CASE WHEN o.retry AND w.attempts + 1 < :max_attempts
      THEN CAST(:finished AS timestamptz)
        + make_interval(secs => LEAST(
          :retry_first_s * power(2, LEAST(w.attempts, 20)), :retry_max_s))
      END,
    processed_at = CAST(:finished AS timestamptz),
    processing_ms = CAST(
      floor(extract(epoch FROM CAST(:finished AS timestamptz) - w.received_at) * 1000) AS integer),
    awaiting_lead_data = o.awaiting_lead_data,
    -- An outcome that decides nothing keeps the decision and UTM.
    routing_decision = COALESCE(o.decision, w.routing_decision),
    utm_source = CASE WHEN o.decision IS NULL THEN w.utm_source ELSE o.utm_source END,
    utm_campaign = CASE WHEN o.decision IS NULL THEN w.utm_campaign ELSE o.utm_campaign END,
    route = CASE WHEN o.decision IS NULL THEN w.route ELSE o.route END
  FROM o WHERE w.id = o.log_id
  RETURNING w.id, w.received_at, w.attempts, w.processing_status, w.error_message,
    COALESCE(w.attempt_started_at, w.received_at) AS started
)
INSERT INTO webhook_attempts
  (log_id, log_received_at, attempt, at, status, routing_decision, error_message, legs,
   duration_ms)
SELECT done.id, done.received_at, done.attempts, CAST(:finished AS timestamptz),
  done.processing_status, o.decision, done.error_message, NULLIF(o.legs, CAST('{}' AS jsonb)),
  GREATEST(0, CAST(
    floor(extract(epoch FROM CAST(:finished AS timestamptz) - done.started) * 1000) AS integer))
FROM done JOIN o ON o.log_id = done.id
ORDER BY done.id
"""
), prepare=False)


# PostgreSQL: make_due() finds its rows by primary key only, and planned at
# each run.
# PERF: with `retry_at IS NOT NULL` in its WHERE clause, PostgreSQL read the
# whole index of waiting events instead (after a VACUUM it takes that index for
# empty) and filtered it by id, on every webhook once the routing queue is full;
# measured by make bench (the 10-lead phase)
_PG_MAKE_DUE = DriverStatement(
    sa.text(
        "UPDATE webhook_logs SET retry_at = CASE WHEN retry_at IS NOT NULL "
        "THEN CAST(:at AS timestamptz) END "
        "WHERE id = ANY(CAST(:ids AS bigint[])) AND processed_at IS NULL"
    ),
    prepare=False,
)


_FLOW_STATUSES = (SUCCESS, PARTIAL, ERROR, PENDING)
# PostgreSQL: the flow chart's buckets in one pass over the window's rows.
_PG_FLOW = sa.text(
    """
SELECT date_bin(:step, received_at, CAST('1970-01-01T00:00:00Z' AS timestamptz)) AS b,
  count(*) FILTER (WHERE processing_status = 'success'),
  count(*) FILTER (WHERE processing_status = 'partial'),
  count(*) FILTER (WHERE processing_status = 'error'),
  count(*) FILTER (WHERE processing_status = 'pending'),
  percentile_cont(0.5) WITHIN GROUP (ORDER BY processing_ms),
  percentile_cont(0.95) WITHIN GROUP (ORDER BY processing_ms)
FROM webhook_logs
WHERE received_at >= :start AND received_at < :end
GROUP BY b
"""
)


@dataclass(frozen=True)
class NewLog:
    """An event to log before anything else happens to it."""

    source: str
    deal_data: dict[str, Any]
    event: str | None = None
    account_id: int | None = None
    pipeline_id: int | None = None
    status_id: int | None = None
    lead_id: int | None = None
    lead_updated_at: int | None = None
    processing_status: str = PENDING
    routing_decision: str | None = None
    error_message: str | None = None
    deal_name: str | None = None
    # The log this event replays (source "replay").
    replay_of: int | None = None
    # The trace of the request that logged it (tracing.traceparent()), for the retries.
    traceparent: str | None = None
    # The webhook request: {"request_id", "content_type", "user_agent"}.
    request: dict[str, Any] | None = None


_PG_INSERT = DriverStatement(
    insert_from_json(
        webhook_logs,
        [f.name for f in dataclasses.fields(NewLog)]
        + ["received_at", "attempt_started_at", "retry_at"],
        "RETURNING id",
    ),
    prepare=True,
)


@dataclass(frozen=True)
class LogQuery:
    """What the admin log viewer asks for: every filter is optional and they all
    apply together. `before_id` continues a page (keyset: ids below it)."""

    statuses: tuple[str, ...] = ()
    decisions: tuple[str, ...] = ()
    lead_id: int | None = None
    source: str | None = None
    received_from: datetime | None = None  # inclusive
    received_to: datetime | None = None  # exclusive
    text: str | None = None  # substring of deal name or UTM values, case-insensitive
    before_id: int | None = None
    limit: int = 50


@dataclass(frozen=True)
class LogPage:
    items: list[dict[str, Any]]
    # Where the next page starts (pass as before_id); None on the last page.
    next_before_id: int | None


@dataclass(frozen=True)
class WindowStats:
    """Events received in [since, until)."""

    since: datetime
    until: datetime
    by_status: dict[str, int]
    # Routing decision -> count; None for events not decided yet.
    by_decision: dict[str | None, int]
    # Nearest-rank percentiles of processing_ms; None without finished events.
    p50_ms: int | None
    p95_ms: int | None
    timed: int  # how many events the percentiles are over


@dataclass(frozen=True)
class WonEvent:
    """A logged event decided as a won deal: what a re-attribution reads of it."""

    id: int
    lead_id: int
    # PERF: deal_data as JSON text, each parsed when its deal is built and dropped
    # right after: a chunk of parsed documents kept alive at once made the garbage
    # collector's full passes the preview's largest cost; measured by python -m
    # bench.reattribution_preview
    deal_json: str


@dataclass(frozen=True)
class LoggedStatus:
    """A logged event of a lead, as the reconciliation compares AmoCRM's events with it."""

    pipeline_id: int | None
    status_id: int | None
    lead_updated_at: int | None
    processing_status: str
    routing_decision: str | None
    # The event reversed the lead's credits (or found them reversed already).
    reversal: bool = False


@dataclass(frozen=True)
class HandledEvent:
    """An AmoCRM status-change event the reconciliation handled; `log`: the event it
    logged for it (routed), if any."""

    event_id: str
    lead_id: int
    created_at: int
    kind: str
    outcome: str
    log: NewLog | None = None


@dataclass(frozen=True)
class DueEvent:
    """An event claimed by the worker for another try."""

    id: int
    source: str
    deal_data: dict[str, Any]
    done_legs: tuple[str, ...]
    lead_id: int | None = None
    awaiting_lead_data: bool = False
    traceparent: str | None = None


class WebhookLogStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = is_postgres(engine)
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        if engine.dialect.name == "sqlite":
            # SQLite's lower() folds ASCII only, so ILIKE would miss "сделка" in "Сделка".
            sa.event.listen(engine, "connect", _unicode_lower)

    def insert(self, logs: list[NewLog]) -> list[int]:
        """Commit every event in one statement; returns their ids in order."""
        with self.writing() as conn:
            return self.insert_on(conn, logs)

    def writing(self) -> Connection:
        """A connection for insert_on(): each statement commits by itself (one
        statement is atomic), so there are no BEGIN and COMMIT round trips."""
        return self._autocommit.connect()

    def insert_on(self, conn: Connection, logs: list[NewLog]) -> list[int]:
        """insert() on a connection from writing() that the caller keeps."""
        received = now()
        rows = [
            {
                **log.__dict__,
                "received_at": received,
                "attempt_started_at": received,
                "retry_at": received + INTAKE_LEASE if log.processing_status == PENDING else None,
            }
            for log in logs
        ]
        if not self.postgres:
            # One INSERT for every row ("insertmanyvalues"), ids in the rows' order.
            return list(conn.execute(_INSERT, _storable(rows)).scalars())
        # All rows as one JSON parameter: a statement PostgreSQL and psycopg prepare
        # once, whatever the number of rows. The ids come from the sequence in the
        # rows' order (ORDER BY n), so sorted they match.
        return sorted(log_id for (log_id,) in _PG_INSERT.rows(conn, {"rows": _json_param(rows)}))

    def record_outcomes(self, outcomes: list[Outcome]) -> None:
        """Store how each event ended (or why it is to be retried), one transaction.
        Of two outcomes of one log in `outcomes`, the later counts."""
        latest = {out.log_id: out for out in outcomes}
        if not latest:
            return
        finished = now()
        if self.postgres:
            rows = [latest[log_id].__dict__ for log_id in sorted(latest)]
            with self.engine.begin() as conn:
                _PG_RECORD_OUTCOMES.rows(
                    conn,
                    {
                        "rows": _json_param(rows),
                        "finished": finished,
                        "max_attempts": RETRIES.tries,
                        "retry_first_s": RETRIES.first_s,
                        "retry_max_s": RETRIES.max_s,
                    },
                )
            return
        with self.engine.begin() as conn:
            before = {
                row.id: row
                for row in conn.execute(_BEFORE_OUTCOME.where(webhook_logs.c.id.in_(latest)))
            }
            updates: list[dict[str, Any]] = []
            attempt_rows = []
            for out in latest.values():
                old = before.get(out.log_id)
                if old is None:
                    continue
                state = next_state(_log_state(old), out, finished)
                updates.append({"log_id": out.log_id, **state.log})
                attempt_rows.append(
                    {"log_id": out.log_id, "log_received_at": old.received_at, **state.attempt}
                )
            if updates:
                conn.execute(_RECORD_OUTCOME, _storable(updates))
                conn.execute(sa.insert(webhook_attempts), _storable(attempt_rows))

    def claim_due(self, limit: int, lease: timedelta) -> list[DueEvent]:
        """Claim up to `limit` events whose retry time has come, hiding them from
        other workers for `lease` (SKIP LOCKED on PostgreSQL; SQLite runs one
        UPDATE at a time)."""
        c = webhook_logs.c
        moment = now()
        due = (
            sa.select(c.id)
            .where(c.retry_at <= moment)
            .order_by(c.retry_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claim = (
            sa.update(webhook_logs)
            .where(c.id.in_(due.scalar_subquery()))
            .values(retry_at=moment + lease, attempt_started_at=moment)
            .returning(
                c.id, c.source, c.deal_data, c.legs, c.lead_id, c.awaiting_lead_data, c.traceparent
            )
        )
        with self.engine.begin() as conn:
            rows = conn.execute(claim).all()
        return [
            DueEvent(
                r.id,
                r.source,
                r.deal_data,
                tuple(leg for leg, out in (r.legs or {}).items() if out in DONE_LEGS),
                r.lead_id,
                r.awaiting_lead_data,
                r.traceparent,
            )
            for r in sorted(rows, key=lambda r: r.id)
        ]

    def by_lead(self, lead_id: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(webhook_logs)
                .where(webhook_logs.c.lead_id == lead_id)
                .order_by(webhook_logs.c.id)
            )
            return [_as_dict(r) for r in rows]

    def search(self, query: LogQuery) -> LogPage:
        """Logs matching every filter of `query`, newest first (id desc)."""
        c = webhook_logs.c
        conditions = _filters(query)
        if query.before_id is not None:
            conditions.append(c.id < query.before_id)
        statement = (
            sa.select(webhook_logs).where(*conditions).order_by(c.id.desc()).limit(query.limit + 1)
        )
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(statement)]
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        return LogPage(rows, rows[-1]["id"] if more else None)

    def export_pages(
        self, query: LogQuery, columns: Sequence[str], page_size: int = 2000
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Every log matching the filters of `query` (its page left aside), newest
        first, as pages of `columns`: each page read by keyset on a connection of its
        own, so an export of any size holds one page in memory and no transaction
        open while it is sent."""
        c = webhook_logs.c
        selected = [c[name] for name in columns]
        before_id: int | None = None
        while True:
            conditions = _filters(query)
            if before_id is not None:
                conditions.append(c.id < before_id)
            statement = (
                sa.select(c.id, *selected).where(*conditions).order_by(c.id.desc())
                .limit(page_size)
            )
            with self.engine.connect() as conn:
                rows = conn.execute(statement).all()
            if not rows:
                return
            yield [tuple(row)[1:] for row in rows]
            if len(rows) < page_size:
                return
            before_id = rows[-1][0]

    def newest_won_per_lead(
        self, query: LogQuery, after_lead_id: int, limit: int
    ) -> tuple[list[WonEvent], int | None]:
        """Each lead's newest event decided as a won deal (ROUTED_DECISIONS) among those
        received in `query`'s range, for up to `limit` leads after `after_lead_id` in
        lead id order (keyset); of those, the ones `query`'s other filters match (a
        lead whose newest event does not match is left out, never taken by an older
        one). Also the lead id to continue after; None when no lead is left."""
        c = webhook_logs.c
        in_range = _filters(
            LogQuery(
                lead_id=query.lead_id,
                received_from=query.received_from,
                received_to=query.received_to,
            )
        )
        newest = (
            sa.select(sa.func.max(c.id).label("id"), c.lead_id)
            .where(*in_range, c.routing_decision.in_(ROUTED_DECISIONS), c.lead_id > after_lead_id)
            .group_by(c.lead_id)
            .order_by(c.lead_id)
            .limit(limit)
            .subquery()
        )
        matching = sa.and_(
            sa.true(),
            *_filters(
                dataclasses.replace(query, lead_id=None, received_from=None, received_to=None)
            ),
        )
        statement = (
            sa.select(
                c.id,
                newest.c.lead_id,
                sa.case((matching, sa.cast(c.deal_data, sa.Text)), else_=sa.null()),
            )
            .join_from(newest, webhook_logs, c.id == newest.c.id)
            .order_by(newest.c.lead_id)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(statement).all()
        events = [WonEvent(log_id, lead_id, data) for log_id, lead_id, data in rows if data]
        return events, rows[-1][1] if len(rows) == limit else None

    def count_matching(self, query: LogQuery, until_id: int | None = None) -> int:
        """How many logs match the filters of `query` (its paging left aside), among
        ids up to `until_id` when given."""
        conditions = _filters(query)
        if until_id is not None:
            conditions.append(webhook_logs.c.id <= until_id)
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.count()).select_from(webhook_logs).where(*conditions)
            ).scalar_one()

    def next_matching(
        self, query: LogQuery, after_id: int, until_id: int, limit: int
    ) -> list[dict[str, Any]]:
        """Up to `limit` logs matching the filters of `query` with after_id < id <=
        until_id, oldest first: a bulk job's next chunk."""
        c = webhook_logs.c
        statement = (
            sa.select(webhook_logs)
            .where(*_filters(query), c.id > after_id, c.id <= until_id)
            .order_by(c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(statement)]

    def max_id(self) -> int:
        """The newest log's id; 0 when there is none."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(webhook_logs.c.id))).scalar_one() or 0

    def find(self, log_id: int) -> dict[str, Any] | None:
        """One log as stored (datetimes as datetimes), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(webhook_logs).where(webhook_logs.c.id == log_id)).first()
        return dict(row._mapping) if row else None

    def attempts(self, log_id: int) -> list[dict[str, Any]]:
        """Every processing attempt of a log, first attempt first."""
        a = webhook_attempts.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(webhook_attempts).where(a.log_id == log_id).order_by(a.attempt)
            )
            return [dict(r._mapping) for r in rows]

    def replays_of(self, log_id: int) -> list[int]:
        """Ids of the logs that replay this one, oldest first."""
        c = webhook_logs.c
        with self.engine.connect() as conn:
            return list(
                conn.execute(sa.select(c.id).where(c.replay_of == log_id).order_by(c.id)).scalars()
            )

    def window_stats(self, since: datetime, until: datetime) -> WindowStats:
        """Counts by status and by routing decision, and processing-time percentiles,
        of the events received in [since, until)."""
        c = webhook_logs.c
        in_window = sa.and_(c.received_at >= since, c.received_at < until)
        count = sa.func.count()
        with self.engine.connect() as conn:
            by_status: dict[str, int] = {
                status: n
                for status, n in conn.execute(
                    sa.select(c.processing_status, count)
                    .where(in_window)
                    .group_by(c.processing_status)
                )
            }
            by_decision: dict[str | None, int] = {
                decision: n
                for decision, n in conn.execute(
                    sa.select(c.routing_decision, count)
                    .where(in_window)
                    .group_by(c.routing_decision)
                )
            }
            timed_filter = sa.and_(in_window, c.processing_ms.is_not(None))
            timed = conn.execute(sa.select(count).where(timed_filter)).scalar_one()
            p50, p95 = (
                _percentile(conn, timed_filter, timed, fraction) for fraction in (0.5, 0.95)
            )
        return WindowStats(since, until, by_status, by_decision, p50, p95, timed)

    def oldest_received_at(self) -> datetime | None:
        """When the oldest event kept was received; None when there is none."""
        with self.engine.connect() as conn:
            oldest = conn.execute(sa.select(sa.func.min(webhook_logs.c.received_at))).scalar()
        return None if oldest is None else utc(oldest)

    def flow_series(self, buckets: Buckets) -> list[Bucket]:
        """Each bucket's events by processing status, and the p50 and p95 of the
        processing times of those that finished (interpolated, as percentile_cont;
        None in a bucket without one). Every bucket is present, empty ones zero."""
        c = webhook_logs.c
        in_range = sa.and_(c.received_at >= buckets.start, c.received_at < buckets.end)
        out = [Bucket() for _ in range(buckets.count)]
        with self.engine.connect() as conn:
            if self.postgres:
                for start, *counts, p50, p95 in conn.execute(
                    _PG_FLOW, {"start": buckets.start, "end": buckets.end, "step": buckets.step}
                ):
                    bucket = out[buckets.index(start)]
                    bucket.counts.update(zip(_FLOW_STATUSES, counts, strict=True))
                    bucket.p50_ms, bucket.p95_ms = p50, p95
                return out
            # SQLite (development): the bucket's times are few, sorted in Python.
            times: list[list[int]] = [[] for _ in range(buckets.count)]
            rows = conn.execute(
                sa.select(c.received_at, c.processing_status, c.processing_ms).where(in_range)
            )
            for received_at, status, ms in rows:
                index = buckets.index(utc(received_at))
                out[index].counts[status] = out[index].counts.get(status, 0) + 1
                if ms is not None:
                    times[index].append(ms)
        for bucket, values in zip(out, times, strict=True):
            values.sort()
            bucket.p50_ms = percentile_cont(values, 0.5)
            bucket.p95_ms = percentile_cont(values, 0.95)
        return out

    def attach_api_lead(self, log_id: int, deal_data: dict[str, Any]) -> None:
        """Store the lead data read from the AmoCRM API with the event."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(webhook_logs)
                .where(webhook_logs.c.id == log_id)
                .values(deal_data=_storable(deal_data), awaiting_lead_data=False)
            )

    def leads_routed(self, lead_ids: list[int]) -> set[int]:
        """Which of these leads already have an event routed successfully."""
        if not lead_ids:
            return set()
        c = webhook_logs.c
        query = (
            sa.select(c.lead_id)
            .distinct()
            .where(
                c.lead_id.in_(lead_ids),
                c.processing_status == SUCCESS,
                c.routing_decision.in_(ROUTED_DECISIONS),
            )
        )
        with self.engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def lead_statuses(self, lead_ids: list[int]) -> dict[int, list[LoggedStatus]]:
        """Every logged event of these leads (webhooks, reconciliation, replays), by lead."""
        found: dict[int, list[LoggedStatus]] = {}
        if not lead_ids:
            return found
        c = webhook_logs.c
        query = sa.select(
            c.lead_id, c.pipeline_id, c.status_id, c.lead_updated_at, c.processing_status,
            c.routing_decision, c.legs,
        ).where(c.lead_id.in_(sorted(set(lead_ids))))
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                # A reversal's legs say reversed, or duplicate when it was reversed before.
                reversal = row.routing_decision == "ignored" and any(
                    leg in ("reversed", "duplicate") for leg in (row.legs or {}).values()
                )
                found.setdefault(row.lead_id, []).append(
                    LoggedStatus(
                        row.pipeline_id, row.status_id, row.lead_updated_at,
                        row.processing_status, row.routing_decision, reversal,
                    )
                )
        return found

    def handled_events(self, event_ids: list[str]) -> set[str]:
        """Which of these AmoCRM events the reconciliation has handled already."""
        if not event_ids:
            return set()
        c = reconciled_events.c
        with self.engine.connect() as conn:
            return set(
                conn.execute(
                    sa.select(c.event_id).where(c.event_id.in_(sorted(set(event_ids))))
                ).scalars()
            )

    def record_handled(self, handled: list[HandledEvent]) -> dict[str, int | None]:
        """Mark the events handled and log the ones routed, in one transaction; an event
        another process marked first is left out (no log). Returns event id -> log id
        (None: nothing logged) of the events this call marked; the logs are pending,
        so the worker routes any that the caller does not get to."""
        if not handled:
            return {}
        at = now()
        with self.engine.begin() as conn:
            marked = {
                row.event_id
                for row in insert_ignoring_conflicts_returning(
                    conn,
                    reconciled_events,
                    [
                        {"event_id": h.event_id, "lead_id": h.lead_id, "created_at": h.created_at,
                         "kind": h.kind, "outcome": h.outcome, "log_id": None, "handled_at": at}
                        for h in handled
                    ],
                )
            }
            to_log = [h for h in handled if h.event_id in marked and h.log is not None]
            logs = [h.log for h in to_log if h.log is not None]
            log_ids = self.insert_on(conn, logs) if logs else []
            c = reconciled_events.c
            for h, log_id in zip(to_log, log_ids, strict=True):
                conn.execute(
                    sa.update(reconciled_events).where(c.event_id == h.event_id)
                    .values(log_id=log_id)
                )
        by_event: dict[str, int | None] = {
            h.event_id: None for h in handled if h.event_id in marked
        }
        by_event.update({h.event_id: i for h, i in zip(to_log, log_ids, strict=True)})
        return by_event

    def prune_handled(self, before: int) -> int:
        """Forget handled events that happened before `before` (unix seconds), outside any
        future reconciliation window; returns how many."""
        with self.engine.begin() as conn:
            return conn.execute(
                sa.delete(reconciled_events).where(reconciled_events.c.created_at < before)
            ).rowcount

    def make_due(self, log_ids: list[int]) -> None:
        """Hand pending events to the worker now, rather than after INTAKE_LEASE."""
        if self.postgres:
            with self.writing() as conn:
                _PG_MAKE_DUE.rows(conn, {"ids": log_ids, "at": now()})
            return
        c = webhook_logs.c
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(webhook_logs)
                .where(c.id.in_(log_ids), c.processed_at.is_(None), c.retry_at.is_not(None))
                .values(retry_at=now())
            )

    def pending_count(self) -> int:
        """Events not finished yet: waiting for their first outcome or a retry."""
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.count()).where(webhook_logs.c.retry_at.is_not(None))
            ).scalar_one()

    def checkpoint(self, name: str) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(checkpoints.c.position).where(checkpoints.c.name == name)
            ).scalar_one_or_none()

    def last_report(self, name: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(checkpoints.c.last_report).where(checkpoints.c.name == name)
            ).scalar_one_or_none()

    def save_checkpoint(self, name: str, position: int, report: dict[str, Any]) -> None:
        values = {"position": position, "last_run_at": now(), "last_report": report}
        with self.engine.begin() as conn:
            # The row first, then the values: two processes saving at once both succeed.
            conn.execute(insert_ignoring_conflicts(self.engine, checkpoints).values(name=name))
            conn.execute(sa.update(checkpoints).where(checkpoints.c.name == name).values(**values))

    def claim_periodic_run(self, name: str, every: timedelta) -> bool:
        """True for exactly one of several workers once `every` has passed since
        the job's last run (the run time is taken in the same statement)."""
        moment = now()
        c = checkpoints.c
        with self.engine.begin() as conn:
            conn.execute(insert_ignoring_conflicts(self.engine, checkpoints).values(name=name))
            claimed = conn.execute(
                sa.update(checkpoints)
                .where(
                    c.name == name, sa.or_(c.last_run_at.is_(None), c.last_run_at <= moment - every)
                )
                .values(last_run_at=moment)
                .returning(c.name)
            ).first()
        return claimed is not None

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))


def _json_param(rows: list[dict[str, Any]]) -> str:
    """The rows as the JSON parameter of a PostgreSQL statement, NUL-free."""
    text = json_rows(rows)
    if "\\u0000" in text:  # rare: NUL characters (or the text "\u0000") somewhere
        text = json_rows(_storable(rows))
    return text


def _storable(value: Any) -> Any:
    """`value` with every NUL in its text replaced: PostgreSQL text and JSONB
    cannot hold NUL, and an event must never fail to be logged for it."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def _log_state(row: sa.Row) -> LogState:
    return LogState(
        received_at=utc(row.received_at),
        attempts=row.attempts,
        attempt_started_at=utc(row.attempt_started_at) if row.attempt_started_at else None,
        legs=row.legs,
        routing_decision=row.routing_decision,
        utm_source=row.utm_source,
        utm_campaign=row.utm_campaign,
        route=row.route,
    )


def _filters(query: LogQuery) -> list[sa.ColumnElement[bool]]:
    """The conditions of `query`'s filters (not its page: before_id, limit)."""
    c = webhook_logs.c
    conditions: list[sa.ColumnElement[bool]] = []
    if query.statuses:
        conditions.append(c.processing_status.in_(query.statuses))
    if query.decisions:
        conditions.append(c.routing_decision.in_(query.decisions))
    if query.lead_id is not None:
        conditions.append(c.lead_id == query.lead_id)
    if query.source is not None:
        conditions.append(c.source == query.source)
    if query.received_from is not None:
        conditions.append(c.received_at >= query.received_from)
    if query.received_to is not None:
        conditions.append(c.received_at < query.received_to)
    if query.text:
        conditions.append(_text_matches(query.text))
    return conditions


def _unicode_lower(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.create_function(
        "lower", 1, lambda s: s.lower() if isinstance(s, str) else s, deterministic=True
    )


def _text_matches(text: str) -> sa.ColumnElement[bool]:
    """ILIKE '%text%' on the deal name and UTM columns (trigram-indexed on
    PostgreSQL); digits also match the lead id exactly."""
    c = webhook_logs.c
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    matches: list[sa.ColumnElement[bool]] = [
        column.ilike(pattern, escape="\\") for column in (c.deal_name, c.utm_source, c.utm_campaign)
    ]
    if text.isascii() and text.isdigit() and len(text) <= 18:
        matches.append(c.lead_id == int(text))
    return sa.or_(*matches)


def _percentile(
    conn: Connection, where: sa.ColumnElement[bool], total: int, fraction: float
) -> int | None:
    """Nearest-rank percentile of processing_ms among the rows `where` selects."""
    if total == 0:
        return None
    c = webhook_logs.c
    if is_postgres(conn.engine):
        value = conn.execute(
            sa.select(sa.func.percentile_disc(fraction).within_group(c.processing_ms)).where(where)
        ).scalar_one()
    else:
        rank = max(math.ceil(fraction * total), 1)
        value = conn.execute(
            sa.select(c.processing_ms)
            .where(where)
            .order_by(c.processing_ms)
            .offset(rank - 1)
            .limit(1)
        ).scalar_one_or_none()
    return None if value is None else int(value)


def _as_dict(row: sa.Row) -> dict[str, Any]:
    data = dict(row._mapping)
    for key in ("received_at", "processed_at", "attempt_started_at"):
        if isinstance(data[key], datetime):
            data[key] = utc(data[key]).isoformat()
    return data
