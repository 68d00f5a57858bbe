"""notifications, the outbox: the only module of notifier_svc that writes SQL.

A pending row is created due at once and owned by whichever sender claims it by
moving its next_attempt_at into the future (a lease). A sender that dies
mid-send leaves the row to be retried when the lease runs out, so nothing is
lost and no two processes (several notifier replicas may run) send the same row.
"""

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from amoroute.db import insert_ignoring_conflicts_returning, keys_among, row_reader
from amoroute.timeutil import now, utc


class Status(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    NOT_SENT = "not_sent"
    FAILED = "failed"


metadata = sa.MetaData()

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("account_id", sa.BigInteger, nullable=False),
    sa.Column("lead_id", sa.BigInteger, nullable=False),
    sa.Column("chat_id", sa.String(64), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("telegram_message_id", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("account_id", "lead_id", name="uq_notifications_account_lead"),
    sa.CheckConstraint(
        "status IN ('pending', 'sent', 'not_sent', 'failed')", name="ck_notifications_status"
    ),
)


@dataclass(frozen=True)
class NotificationRow:
    id: int
    account_id: int
    lead_id: int
    chat_id: str
    text: str
    status: Status
    error: str
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    sent_at: datetime | None
    telegram_message_id: int | None


@dataclass(frozen=True)
class NewNotification:
    """A lead's notification to store: what NotificationStore.create_many takes."""

    account_id: int
    lead_id: int
    chat_id: str
    text: str
    status: Status
    error: str = ""
    # When the outbox may first send it; None for a row that is never sent.
    next_attempt_at: datetime | None = None


_notification_values = row_reader(notifications)


def _row(r: sa.Row) -> NotificationRow:
    c = _notification_values(r)
    return NotificationRow(
        id=c["id"],
        account_id=c["account_id"],
        lead_id=c["lead_id"],
        chat_id=c["chat_id"],
        text=c["text"],
        status=Status(c["status"]),
        error=c["error"],
        attempts=c["attempts"],
        next_attempt_at=utc(c["next_attempt_at"]) if c["next_attempt_at"] else None,
        created_at=utc(c["created_at"]),
        sent_at=utc(c["sent_at"]) if c["sent_at"] else None,
        telegram_message_id=c["telegram_message_id"],
    )


def _pending(table: sa.FromClause) -> sa.ColumnElement[bool]:
    # A literal, not a parameter: the planner must see that the query implies the
    # partial index's predicate whatever plan it keeps.
    return table.c.status == sa.literal_column(f"'{Status.PENDING.value}'")


def _due_query() -> sa.Select[Any]:
    # Every chat with a pending row: the first, then the next above each.
    first = sa.select(sa.func.min(notifications.c.chat_id).label("chat_id")).where(
        _pending(notifications)
    )
    chats = first.cte("chats", recursive=True)
    later = notifications.alias("later")
    next_chat = (
        sa.select(sa.func.min(later.c.chat_id))
        .where(_pending(later), later.c.chat_id > chats.c.chat_id)
        .scalar_subquery()
    )
    chats = chats.union_all(sa.select(next_chat).where(chats.c.chat_id.is_not(None)))
    # Each chat's longest-waiting due row.
    own = notifications.alias("own")
    oldest_due = (
        sa.select(own.c.id)
        .where(
            _pending(own),
            own.c.chat_id == chats.c.chat_id,
            own.c.next_attempt_at <= sa.bindparam("at"),
        )
        .order_by(own.c.next_attempt_at, own.c.id)
        .limit(1)
        .correlate(chats)
        .scalar_subquery()
    )
    return (
        sa.select(notifications)
        .select_from(chats.join(notifications, notifications.c.id == oldest_due))
        .order_by(notifications.c.next_attempt_at, notifications.c.id)
        .limit(sa.bindparam("limit"))
    )


_DUE = _due_query()


class NotificationStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(
        self,
        *,
        account_id: int,
        lead_id: int,
        chat_id: str,
        text: str,
        status: Status,
        error: str = "",
        next_attempt_at: datetime | None = None,
    ) -> tuple[NotificationRow, bool]:
        """Insert the lead's notification unless it has one; returns (stored row, duplicate)."""
        item = NewNotification(account_id, lead_id, chat_id, text, status, error, next_attempt_at)
        return self.create_many([item])[0]

    def create_many(self, items: Sequence[NewNotification]) -> list[tuple[NotificationRow, bool]]:
        """Insert each lead's notification unless it has one, in one transaction; returns
        (stored row, duplicate) per item, in order. A lead repeated in `items` is new the
        first time and a duplicate after. One INSERT, plus one SELECT when a lead has a row."""
        if not items:
            return []
        created_at = now()
        first: dict[tuple[int, int], dict[str, object]] = {}
        for item in items:
            first.setdefault(
                (item.account_id, item.lead_id),
                {
                    "account_id": item.account_id,
                    "lead_id": item.lead_id,
                    "chat_id": item.chat_id,
                    "text": item.text,
                    "status": item.status.value,
                    "error": item.error,
                    "attempts": 0,
                    "next_attempt_at": item.next_attempt_at,
                    "created_at": created_at,
                },
            )
        table = notifications
        key = (table.c.account_id, table.c.lead_id)
        with self.engine.begin() as conn:
            # Rows in key order: two batches sharing leads then wait for each other
            # rather than deadlock. RETURNING order is not the rows' order on every
            # database: they are matched by key.
            inserted = {
                (r.account_id, r.lead_id): _row(r)
                for r in insert_ignoring_conflicts_returning(
                    conn, table, [first[k] for k in sorted(first)]
                )
            }
            existing = [k for k in first if k not in inserted]
            stored = dict(inserted)
            if existing:
                stored |= {
                    (r.account_id, r.lead_id): _row(r)
                    for r in conn.execute(sa.select(table).where(keys_among(conn, key, existing)))
                }
        results = []
        fresh = set(inserted)
        for item in items:
            k = (item.account_id, item.lead_id)
            results.append((stored[k], k not in fresh))
            fresh.discard(k)
        return results

    def get(self, notification_id: int) -> NotificationRow:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(notifications).where(notifications.c.id == notification_id)
            ).one()
        return _row(row)

    def due(self, at: datetime, limit: int) -> list[NotificationRow]:
        """The longest-waiting pending row of each chat that has one due at `at`,
        longest waiting first, `limit` chats at most.

        One row per chat, because Telegram takes about one message a second per
        chat: the oldest rows overall would all be one busy chat's during a
        campaign burst, and every other chat would wait behind its backlog.
        The chats are found by skipping from one to the next along
        ix_notifications_pending_chat, so a sweep reads two index entries per
        chat however long a backlog is."""
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(_DUE, {"at": at, "limit": limit})]

    def claim(self, notification_id: int, at: datetime, lease_until: datetime) -> bool:
        """Take a due pending row for sending until `lease_until`; False if another
        sender took it first or it is no longer due."""
        query = (
            sa.update(notifications)
            .where(notifications.c.id == notification_id)
            .where(notifications.c.status == Status.PENDING.value)
            .where(notifications.c.next_attempt_at <= at)
            .values(next_attempt_at=lease_until)
        )
        with self.engine.begin() as conn:
            return conn.execute(query).rowcount == 1

    def mark_sent(self, notification_id: int, message_id: int | None) -> None:
        self._update(
            notification_id,
            status=Status.SENT.value,
            error="",
            attempts=notifications.c.attempts + 1,
            next_attempt_at=None,
            sent_at=now(),
            telegram_message_id=message_id,
        )

    def mark_retry(self, notification_id: int, error: str, at: datetime) -> None:
        """Count a failed attempt; the row is due again at `at`."""
        self._update(
            notification_id, error=error, attempts=notifications.c.attempts + 1, next_attempt_at=at
        )

    def mark_failed(self, notification_id: int, error: str) -> None:
        self._update(
            notification_id,
            status=Status.FAILED.value,
            error=error,
            attempts=notifications.c.attempts + 1,
            next_attempt_at=None,
        )

    def page(self, *, limit: int, after_id: int | None, lead_id: int = 0) -> list[NotificationRow]:
        """Newest first, `limit` rows strictly older than `after_id`."""
        query = sa.select(notifications).order_by(notifications.c.id.desc()).limit(limit)
        if after_id is not None:
            query = query.where(notifications.c.id < after_id)
        if lead_id:
            query = query.where(notifications.c.lead_id == lead_id)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def _update(self, notification_id: int, **values: object) -> None:
        # Only a pending row changes: a row that is sent or failed stays as it is.
        query = (
            sa.update(notifications)
            .where(notifications.c.id == notification_id)
            .where(notifications.c.status == Status.PENDING.value)
            .values(**values)
        )
        with self.engine.begin() as conn:
            conn.execute(query)
