"""webhook_logs: the record of every event; the only edge module that writes SQL."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from amoroute.db import JsonColumn
from amoroute.timeutil import now, utc

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
)

PENDING, SUCCESS, PARTIAL, ERROR = "pending", "success", "partial", "error"
DONE_LEGS = ("recorded", "duplicate", "superseded", "reversed")

# A pending event whose outcome never got recorded (the edge died mid-request)
# is picked up by the worker after this long.
INTAKE_LEASE = timedelta(seconds=30)
MAX_ATTEMPTS = 10


def retry_delay(attempts: int) -> timedelta:
    """Backoff before the next try of an event that has had `attempts` tries:
    5 s, 10 s, 20 s, … capped at 30 min."""
    return timedelta(seconds=min(5 * 2 ** max(attempts - 1, 0), 1800))


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


@dataclass(frozen=True)
class Outcome:
    """What processing an event found out. `retry`: the worker should try again
    (router unreachable, a leg failed); `legs`: leg name -> recorded|duplicate|failed."""

    log_id: int
    status: str
    decision: str | None = None
    utm_source: str | None = None
    utm_campaign: str | None = None
    error_message: str | None = None
    retry: bool = False
    legs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DueEvent:
    """An event claimed by the worker for another try."""

    id: int
    source: str
    deal_data: dict[str, Any]
    done_legs: tuple[str, ...]


class WebhookLogStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def insert(self, logs: list[NewLog]) -> list[int]:
        """Commit every event in one transaction; returns their ids in order."""
        received = now()
        rows = [
            {
                **log.__dict__,
                "received_at": received,
                "retry_at": received + INTAKE_LEASE if log.processing_status == PENDING else None,
            }
            for log in logs
        ]
        with self.engine.begin() as conn:
            return [
                conn.execute(
                    sa.insert(webhook_logs).values(**row).returning(webhook_logs.c.id)
                ).scalar_one()
                for row in rows
            ]

    def record_outcomes(self, outcomes: list[Outcome]) -> None:
        """Store how each event ended (or why it is to be retried), one transaction."""
        finished = now()
        c = webhook_logs.c
        with self.engine.begin() as conn:
            before = {
                row.id: row
                for row in conn.execute(
                    sa.select(c.id, c.received_at, c.attempts, c.legs).where(
                        c.id.in_([o.log_id for o in outcomes])
                    )
                )
            }
            for out in outcomes:
                old = before.get(out.log_id)
                if old is None:
                    continue
                attempts = old.attempts + 1
                retry = out.retry and attempts < MAX_ATTEMPTS
                error = out.error_message
                if out.retry and not retry:
                    error = f"{error} (gave up after {attempts} attempts)"
                values: dict[str, Any] = {
                    "processing_status": out.status,
                    "error_message": error,
                    "attempts": attempts,
                    "legs": {**(old.legs or {}), **out.legs} or None,
                    "retry_at": finished + retry_delay(attempts) if retry else None,
                    "processed_at": finished,
                    "processing_ms": int((finished - utc(old.received_at)).total_seconds() * 1000),
                }
                if out.decision is not None:
                    values.update(
                        routing_decision=out.decision,
                        utm_source=out.utm_source,
                        utm_campaign=out.utm_campaign,
                    )
                conn.execute(sa.update(webhook_logs).where(c.id == out.log_id).values(**values))

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
            .values(retry_at=moment + lease)
            .returning(c.id, c.source, c.deal_data, c.legs)
        )
        with self.engine.begin() as conn:
            rows = conn.execute(claim).all()
        return [
            DueEvent(
                r.id,
                r.source,
                r.deal_data,
                tuple(leg for leg, out in (r.legs or {}).items() if out in DONE_LEGS),
            )
            for r in sorted(rows, key=lambda r: r.id)
        ]

    def get(self, log_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(webhook_logs).where(webhook_logs.c.id == log_id)).first()
        return _as_dict(row) if row else None

    def by_lead(self, lead_id: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(webhook_logs)
                .where(webhook_logs.c.lead_id == lead_id)
                .order_by(webhook_logs.c.id)
            )
            return [_as_dict(r) for r in rows]

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))


def _as_dict(row: sa.Row) -> dict[str, Any]:
    data = dict(row._mapping)
    for key in ("received_at", "processed_at"):
        if isinstance(data[key], datetime):
            data[key] = utc(data[key]).isoformat()
    return data
