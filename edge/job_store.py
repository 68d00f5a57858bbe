"""jobs: long admin jobs (bulk replay, re-attribution) the worker runs in chunks; the only
SQL over that table.

A worker holds a job by a lease: `claimed_by` names it and `lease_until` bounds it. Every
write a worker makes to a job is conditional on still holding it (and on the job still
running), so a worker that lost its job (lease expired, job cancelled) changes nothing."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from amoroute.db import JsonColumn
from amoroute.timeutil import now

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)
UNFINISHED = (QUEUED, RUNNING)

metadata = sa.MetaData()

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("request", JsonColumn, nullable=False),
    sa.Column("until_id", sa.BigInteger, nullable=False),
    sa.Column("total", sa.BigInteger),
    sa.Column("done", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("failed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cursor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("claimed_by", sa.String(64)),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("error", sa.Text),
)


@dataclass(frozen=True)
class JobRow:
    id: int
    kind: str
    state: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    request: dict[str, Any]
    until_id: int
    total: int | None
    done: int
    failed: int
    cursor: int
    claimed_by: str | None
    lease_until: datetime | None
    error: str | None


def _row(row: sa.Row) -> JobRow:
    return JobRow(**row._mapping)


class JobStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(
        self, kind: str, created_by: str, request: dict[str, Any], until_id: int, total: int
    ) -> JobRow:
        moment = now()
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.insert(jobs)
                .values(
                    kind=kind,
                    state=QUEUED,
                    created_by=created_by,
                    created_at=moment,
                    updated_at=moment,
                    request=request,
                    until_id=until_id,
                    total=total,
                )
                .returning(*jobs.c)
            ).one()
        return _row(row)

    def get(self, job_id: int) -> JobRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        return _row(row) if row else None

    def page(self, limit: int, before_id: int | None) -> tuple[list[JobRow], int | None]:
        """Jobs newest first; and where the next page starts (pass as before_id), or None."""
        query = sa.select(jobs).order_by(jobs.c.id.desc()).limit(limit + 1)
        if before_id is not None:
            query = query.where(jobs.c.id < before_id)
        with self.engine.connect() as conn:
            rows = [_row(r) for r in conn.execute(query)]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, rows[-1].id if more else None

    def cancel(self, job_id: int) -> JobRow | None:
        """Cancel an unfinished job; returns it as it is now (None: no such job). A worker
        in the middle of a chunk then fails to record it, so the chunk is rolled back."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state.in_(UNFINISHED))
                .values(state=CANCELLED, updated_at=now(), lease_until=None)
            )
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        return _row(row) if row else None

    def claim(self, worker: str, lease: timedelta) -> JobRow | None:
        """Take the oldest queued job, or a running one whose lease ran out (its worker
        stopped), for `lease`; None when there is none. One worker wins each job: on
        PostgreSQL the SELECT locks the row it picks (SKIP LOCKED: a concurrent claim takes
        the next one), and the UPDATE checks again that it is claimable (SQLite runs one
        write at a time, so of two claims of one job the second updates nothing).
        Two statements: inside an UPDATE's `IN (SELECT … LIMIT 1 FOR UPDATE SKIP LOCKED)`
        PostgreSQL may run the subquery again per row and claim every job at once."""
        moment = now()
        c = jobs.c
        claimable = sa.or_(
            c.state == QUEUED, sa.and_(c.state == RUNNING, c.lease_until < moment)
        )
        oldest = (
            sa.select(c.id)
            .where(claimable)
            .order_by(c.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        with self.engine.begin() as conn:
            job_id = conn.execute(oldest).scalar_one_or_none()
            if job_id is None:
                return None
            row = conn.execute(
                sa.update(jobs)
                .where(c.id == job_id, claimable)
                .values(
                    state=RUNNING, claimed_by=worker, lease_until=moment + lease, updated_at=moment
                )
                .returning(*jobs.c)
            ).first()
        return _row(row) if row else None

    def record_chunk(
        self,
        conn: Connection,
        job_id: int,
        worker: str,
        cursor: int,
        done: int,
        failed: int,
        lease: timedelta,
        request: dict[str, Any] | None = None,
    ) -> bool:
        """On the caller's transaction: move the cursor, add to the counts and renew the
        lease (and replace the request, for a job that keeps its progress there). False
        when this worker no longer holds the running job: the caller rolls its chunk back."""
        more = {} if request is None else {"request": request}
        return self._update(
            conn,
            job_id,
            worker,
            cursor=cursor,
            done=jobs.c.done + done,
            failed=jobs.c.failed + failed,
            lease_until=now() + lease,
            **more,
        )

    def finish(self, job_id: int, worker: str, state: str, error: str | None = None) -> bool:
        with self.engine.begin() as conn:
            return self._update(conn, job_id, worker, state=state, error=error, lease_until=None)

    def release(self, job_id: int, worker: str) -> bool:
        """Let another worker take the job over at once (this one is stopping)."""
        with self.engine.begin() as conn:
            return self._update(conn, job_id, worker, lease_until=now())

    def _update(self, conn: Connection, job_id: int, worker: str, **values: Any) -> bool:
        c = jobs.c
        result = conn.execute(
            sa.update(jobs)
            .where(c.id == job_id, c.claimed_by == worker, c.state == RUNNING)
            .values(updated_at=now(), **values)
        )
        return result.rowcount == 1
