"""notifications, the outbox, and chat_pace, when each chat may next get a
message: the only module of notifier_svc that writes SQL.

A pending row is created due at once. Its chat's rows are sent by whichever
sender claims the chat by moving the chat's chat_pace.next_send_at into the
future (a lease), so no two processes (several notifier replicas may run) send
to one chat at once, and the chat's pace holds for the bot as a whole. The
sender records the send (rows sent, chat's next slot) in one transaction. A
sender that dies mid-send leaves the chat to another when the lease runs out
and its rows pending: nothing is lost, and a message sent just before such a
crash is sent again (at least once, never lost).

A chat Telegram moved (a group upgraded to a supergroup) is recorded in
chat_moves; a notification addressed to it is stored for the chat it moved to.
The row's chat_id is where it is (or was) sent, and moved_from_chat_id the chat
the rules addressed it to: each sent row keeps both ids, so the move table is
not needed to tell where a sale was announced.

The daily summary (notifier_svc/daily_summary.py) is recorded in daily_summaries,
one row per (chat, local day), inserted in the transaction that queues the
summary's messages as notifications: whoever inserts the row first queues them,
every other replica (or a restart) finds it and queues nothing. Its messages are
rows of account 0 with negative lead ids, which no sale has, sent by the outbox
within the chat's pace like any sale.
"""

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from amoroute.db import (
    insert_ignoring_conflicts,
    insert_ignoring_conflicts_returning,
    keys_among,
    row_reader,
)
from amoroute.timeutil import now, utc
from notifier_svc.chat_moves import closes_a_cycle, current_chat


class Status(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    NOT_SENT = "not_sent"
    FAILED = "failed"


class Failure(enum.StrEnum):
    """Why a failed notification failed."""

    NONE = ""
    # The bot was blocked or removed, or the chat does not exist: nothing more is
    # tried for that chat's waiting notifications until someone fixes the chat.
    CHAT_UNREACHABLE = "chat_unreachable"
    # Telegram refused this message for another reason (e.g. the bot token).
    REFUSED = "refused"
    # Telegram was busy or unreachable at every attempt.
    GAVE_UP = "gave_up"
    # No chat configured for the sale.
    NO_CHAT = "no_chat"


# chat_pace's row for the bot as a whole: not a chat id (settings.CHAT_ID), so
# no chat shares it.
BOT_PACE = "*bot"

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
    # The sale's amount and lines for a digest; None on rows stored before digests.
    sa.Column("amount", sa.BigInteger, nullable=True),
    sa.Column("digest_entry", sa.Text, nullable=True),
    sa.Column("failure", sa.String(32), nullable=False, server_default=""),
    # The chat the sale was addressed to when Telegram had moved it; chat_id is then
    # the chat it moved to. None: sent where it was addressed.
    sa.Column("moved_from_chat_id", sa.String(64), nullable=True),
    # The W3C trace context of the Notify call that stored the row (NULL: not traced).
    sa.Column("traceparent", sa.String(64), nullable=True),
    sa.UniqueConstraint("account_id", "lead_id", name="uq_notifications_account_lead"),
    sa.CheckConstraint(
        "status IN ('pending', 'sent', 'not_sent', 'failed')", name="ck_notifications_status"
    ),
)

chat_pace = sa.Table(
    "chat_pace",
    metadata,
    sa.Column("chat_id", sa.String(64), primary_key=True),
    # No message to this chat before then; in the future while a sender holds it.
    sa.Column("next_send_at", sa.DateTime(timezone=True), nullable=False),
    # The holder's claim: only it may release the chat.
    sa.Column("lease_token", sa.String(32), nullable=True),
)

chat_moves = sa.Table(
    "chat_moves",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("old_chat_id", sa.String(64), nullable=False),
    sa.Column("new_chat_id", sa.String(64), nullable=False),
    sa.Column("moved_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("old_chat_id", name="uq_chat_moves_old_chat_id"),
    sa.Index("ix_chat_moves_new_chat_id", "new_chat_id"),
)

daily_summaries = sa.Table(
    "daily_summaries",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    # The chat as the rules (or TELEGRAM_DEFAULT_CHAT_ID) name it, before any move.
    sa.Column("chat_id", sa.String(64), nullable=False),
    # The local day the summary is about (NOTIFIER_TIMEZONE).
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("parts", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("chat_id", "day", name="uq_daily_summaries_chat_day"),
)

# A summary's messages are notifications of this account with lead id
# -(summary id * SUMMARY_PARTS + part): a sale's lead id is positive.
SUMMARY_ACCOUNT_ID = 0
SUMMARY_PARTS = 1000


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
    amount: int | None = None
    digest_entry: str | None = None
    failure: Failure = Failure.NONE
    moved_from_chat_id: str | None = None
    traceparent: str | None = None


@dataclass(frozen=True)
class ChatMoveRow:
    id: int
    old_chat_id: str
    new_chat_id: str
    # Where sales addressed to old_chat_id go now: new_chat_id or the end of its chain.
    current_chat_id: str
    moved_at: datetime


@dataclass(frozen=True)
class MoveResult:
    """What NotificationStore.move_chat did."""

    # A move not known before (not one another sender recorded already).
    recorded: bool
    # Where the old chat's sales go now.
    current_chat_id: str
    # Pending rows moved there.
    moved: int
    # The sender holds current_chat_id's lease (the same token) and may send now.
    holding: bool


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
    failure: Failure = Failure.NONE
    amount: int | None = None
    # The sale's lines in a digest (message.render_digest_entry); None: sent alone.
    digest_entry: str | None = None
    # The trace the send is to join (tracing.traceparent()); None: not traced.
    traceparent: str | None = None


@dataclass(frozen=True)
class RowChange:
    """What one send did to some of a chat's pending rows (all of them when
    `ids` is None): the values a store writes."""

    ids: Sequence[int] | None
    status: Status
    error: str = ""
    failure: Failure = Failure.NONE
    next_attempt_at: datetime | None = None
    message_id: int | None = None
    sent_at: datetime | None = None
    # Send these rows alone from now on, each as its own message (no digest).
    alone: bool = False


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
        amount=c["amount"],
        digest_entry=c["digest_entry"],
        failure=Failure(c["failure"]),
        moved_from_chat_id=c["moved_from_chat_id"],
        traceparent=c["traceparent"],
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
    # A chat another sender holds, or whose pace is not up yet, waits.
    busy = sa.exists().where(
        chat_pace.c.chat_id == notifications.c.chat_id,
        chat_pace.c.next_send_at > sa.bindparam("at"),
    )
    return (
        sa.select(notifications)
        .select_from(chats.join(notifications, notifications.c.id == oldest_due))
        .where(~busy)
        .order_by(notifications.c.next_attempt_at, notifications.c.id)
        .limit(sa.bindparam("limit"))
    )


_CHAT_ROWS = (
    sa.select(notifications)
    .where(
        _pending(notifications),
        notifications.c.chat_id == sa.bindparam("chat_id"),
        notifications.c.next_attempt_at <= sa.bindparam("at"),
    )
    .order_by(notifications.c.next_attempt_at, notifications.c.id)
    .limit(sa.bindparam("limit"))
)


_DUE = _due_query()


def _moves_from(conn: sa.Connection, chat_ids: set[str]) -> dict[str, str]:
    """The recorded moves (old -> new) along the chains that start at `chat_ids`:
    one indexed lookup per link of the longest chain (Telegram moves a chat once,
    so one or two). Each chat is looked up once, so a cycle ends the walk."""
    moves: dict[str, str] = {}
    asked: set[str] = set()
    frontier = set(chat_ids)
    while frontier:
        asked |= frontier
        found = conn.execute(
            sa.select(chat_moves.c.old_chat_id, chat_moves.c.new_chat_id).where(
                chat_moves.c.old_chat_id.in_(sorted(frontier))
            )
        ).all()
        moves.update({old: new for old, new in found})
        frontier = {new for _, new in found} - asked
    return moves


def _new_rows(
    items: Sequence[NewNotification], moves: dict[str, str], created_at: datetime
) -> dict[tuple[int, int], dict[str, object]]:
    """The row to insert for each lead's first item, addressed to the chat it
    lives at now."""
    first: dict[tuple[int, int], dict[str, object]] = {}
    for item in items:
        chat_id = current_chat(moves, item.chat_id) if item.chat_id else item.chat_id
        first.setdefault(
            (item.account_id, item.lead_id),
            {
                "account_id": item.account_id,
                "lead_id": item.lead_id,
                "chat_id": chat_id,
                "text": item.text,
                "status": item.status.value,
                "error": item.error,
                "attempts": 0,
                "next_attempt_at": item.next_attempt_at,
                "created_at": created_at,
                "amount": item.amount,
                "digest_entry": item.digest_entry,
                "failure": item.failure.value,
                "moved_from_chat_id": item.chat_id if chat_id != item.chat_id else None,
                "traceparent": item.traceparent,
            },
        )
    return first


def _claim(
    conn: sa.Connection,
    engine: Engine,
    chat_id: str,
    at: datetime,
    lease_until: datetime,
    token: str,
) -> bool:
    """Hold `chat_id` with `token` until `lease_until` if its next slot has come by
    `at`. One conditional UPDATE: PostgreSQL re-checks it on the row another
    replica just changed, so two replicas never both win."""
    conn.execute(
        insert_ignoring_conflicts(engine, chat_pace).values(
            chat_id=chat_id, next_send_at=at, lease_token=None
        )
    )
    claimed = conn.execute(
        sa.update(chat_pace)
        .where(chat_pace.c.chat_id == chat_id, chat_pace.c.next_send_at <= at)
        .values(next_send_at=lease_until, lease_token=token)
    ).rowcount
    return claimed == 1


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
        failure: Failure = Failure.NONE,
    ) -> tuple[NotificationRow, bool]:
        """Insert the lead's notification unless it has one; returns (stored row, duplicate)."""
        item = NewNotification(
            account_id, lead_id, chat_id, text, status, error, next_attempt_at, failure
        )
        return self.create_many([item])[0]

    def create_many(self, items: Sequence[NewNotification]) -> list[tuple[NotificationRow, bool]]:
        """Insert each lead's notification unless it has one, in one transaction; returns
        (stored row, duplicate) per item, in order. A lead repeated in `items` is new the
        first time and a duplicate after. One SELECT of the chats' moves (one per link of
        a chain of moves), one INSERT, plus one SELECT when a lead has a row."""
        if not items:
            return []
        created_at = now()
        table = notifications
        key = (table.c.account_id, table.c.lead_id)
        with self.engine.begin() as conn:
            # A chat Telegram moved gets its sales at its new id, while the rules
            # still name the old one. A move committed after this read leaves the
            # row at the old id; its first send then moves it (one more 400).
            moves = _moves_from(conn, {item.chat_id for item in items if item.chat_id})
            first = _new_rows(items, moves, created_at)
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

    def move_chat(
        self,
        old_chat_id: str,
        new_chat_id: str,
        lease_token: str,
        tried_ids: Sequence[int],
        at: datetime,
        lease_until: datetime,
    ) -> MoveResult | None:
        """Telegram answered a send to `old_chat_id` (whose lease `lease_token` holds)
        that the chat now is `new_chat_id`. In one transaction: record the move, count
        the attempt on the rows tried (`tried_ids`), move every pending row of the
        old chat to where it now lives (due at `at`: resent at once), and move the
        chat's lease there: the sender holds the new chat until `lease_until` unless
        another sender holds it or its pace is not up. None, and nothing changed,
        when the move would lead the chat back to itself (a cycle)."""
        with self.engine.begin() as conn:
            moves = _moves_from(conn, {new_chat_id})
            if closes_a_cycle(moves, old_chat_id, new_chat_id):
                return None
            current = current_chat(moves, new_chat_id)
            recorded = conn.execute(
                sa.update(chat_moves)
                .where(chat_moves.c.old_chat_id == old_chat_id,
                       chat_moves.c.new_chat_id != new_chat_id)
                .values(new_chat_id=new_chat_id, moved_at=at)
            ).rowcount
            inserted = conn.execute(
                insert_ignoring_conflicts(self.engine, chat_moves)
                .values(old_chat_id=old_chat_id, new_chat_id=new_chat_id, moved_at=at)
                .returning(chat_moves.c.id)
            ).first()
            recorded += inserted is not None
            in_old_chat = (_pending(notifications), notifications.c.chat_id == old_chat_id)
            if tried_ids:
                conn.execute(
                    sa.update(notifications)
                    .where(*in_old_chat, notifications.c.id.in_(list(tried_ids)))
                    .values(attempts=notifications.c.attempts + 1)
                )
            moved = conn.execute(
                sa.update(notifications)
                .where(*in_old_chat)
                .values(
                    chat_id=current,
                    # The first address stays: a -> b -> c keeps a.
                    moved_from_chat_id=sa.func.coalesce(
                        notifications.c.moved_from_chat_id, notifications.c.chat_id
                    ),
                    next_attempt_at=at,
                    error="",
                )
            ).rowcount
            # The old chat's pace row goes (nothing is sent there any more) and the
            # new chat's is claimed: the 400 delivered nothing, so no pace is owed
            # from it, and the new chat's own pace, if it has one, is kept.
            conn.execute(
                sa.delete(chat_pace).where(
                    chat_pace.c.chat_id == old_chat_id, chat_pace.c.lease_token == lease_token
                )
            )
            holding = _claim(conn, self.engine, current, at, lease_until, lease_token)
        return MoveResult(recorded > 0, current, moved, holding)

    def is_moved_to(self, chat_id: str) -> bool:
        """Whether Telegram moved a chat to `chat_id` (the bot may post there)."""
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(chat_moves.c.id).where(chat_moves.c.new_chat_id == chat_id).limit(1)
            ).first()
        return found is not None

    def moves_page(self, *, limit: int, after_id: int | None) -> list[ChatMoveRow]:
        """Chat moves newest first, `limit` strictly older than `after_id`, each with
        the chat its sales go to now."""
        query = sa.select(chat_moves).order_by(chat_moves.c.id.desc()).limit(limit)
        if after_id is not None:
            query = query.where(chat_moves.c.id < after_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            moves = _moves_from(conn, {r.new_chat_id for r in rows})
        return [
            ChatMoveRow(
                id=r.id,
                old_chat_id=r.old_chat_id,
                new_chat_id=r.new_chat_id,
                current_chat_id=current_chat(moves, r.new_chat_id),
                moved_at=utc(r.moved_at),
            )
            for r in rows
        ]

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

    def due_in_chat(self, chat_id: str, at: datetime, limit: int) -> list[NotificationRow]:
        """The chat's pending rows due at `at`, longest waiting first, `limit` at most."""
        with self.engine.connect() as conn:
            rows = conn.execute(_CHAT_ROWS, {"chat_id": chat_id, "at": at, "limit": limit})
            return [_row(r) for r in rows]

    def claim_chat(self, chat_id: str, at: datetime, lease_until: datetime) -> str | None:
        """Hold `chat_id` until `lease_until` if its next slot has come by `at`; returns
        the lease's token (for record()), or None when another sender holds the chat
        or its pace is not up."""
        token = uuid.uuid4().hex
        with self.engine.begin() as conn:
            claimed = _claim(conn, self.engine, chat_id, at, lease_until, token)
        return token if claimed else None

    def reserve_bot_slot(self, at: datetime, interval: timedelta) -> datetime:
        """Book the bot's next free send slot, at `at` or later, and push the next one
        `interval` after it; returns the slot. Every replica books from the same row,
        so the bot's overall pace holds across them."""
        with self.engine.begin() as conn:
            conn.execute(
                insert_ignoring_conflicts(self.engine, chat_pace).values(
                    chat_id=BOT_PACE, next_send_at=at, lease_token=None
                )
            )
            # FOR UPDATE: PostgreSQL replicas take turns here. SQLite has one
            # writer at a time and a notifier on it is one process with one sender.
            booked = conn.execute(
                sa.select(chat_pace.c.next_send_at)
                .where(chat_pace.c.chat_id == BOT_PACE)
                .with_for_update()
            ).scalar_one()
            slot = max(at, utc(booked))
            conn.execute(
                sa.update(chat_pace)
                .where(chat_pace.c.chat_id == BOT_PACE)
                .values(next_send_at=slot + interval)
            )
        return slot

    def record(
        self,
        chat_id: str,
        lease_token: str,
        next_send_at: datetime,
        changes: Sequence[RowChange],
    ) -> dict[tuple[Status, Failure], int]:
        """What a send to `chat_id` did, in one transaction: each change to its pending
        rows, and the chat released until `next_send_at` (unless the lease ran out
        and another sender holds it now). Returns how many rows reached each final
        (status, failure)."""
        finished: dict[tuple[Status, Failure], int] = {}
        with self.engine.begin() as conn:
            for change in changes:
                query = (
                    sa.update(notifications)
                    .where(_pending(notifications), notifications.c.chat_id == chat_id)
                    .values(
                        status=change.status.value,
                        error=change.error,
                        failure=change.failure.value,
                        attempts=notifications.c.attempts + 1,
                        next_attempt_at=change.next_attempt_at,
                    )
                )
                if change.ids is not None:
                    query = query.where(notifications.c.id.in_(list(change.ids)))
                if change.alone:
                    query = query.values(digest_entry=None)
                if change.status is Status.SENT:
                    query = query.values(
                        sent_at=change.sent_at or now(), telegram_message_id=change.message_id
                    )
                count = conn.execute(query).rowcount
                if change.status is not Status.PENDING:
                    key = (change.status, change.failure)
                    finished[key] = finished.get(key, 0) + count
            conn.execute(
                sa.update(chat_pace)
                .where(chat_pace.c.chat_id == chat_id, chat_pace.c.lease_token == lease_token)
                .values(next_send_at=next_send_at, lease_token=None)
            )
        return finished

    def page(
        self,
        *,
        limit: int,
        after_id: int | None,
        lead_id: int = 0,
        failure: Failure = Failure.NONE,
    ) -> list[NotificationRow]:
        """Newest first, `limit` rows strictly older than `after_id`; only `lead_id`'s
        and only those failed as `failure`, when given."""
        query = sa.select(notifications).order_by(notifications.c.id.desc()).limit(limit)
        if failure is not Failure.NONE:
            query = query.where(notifications.c.failure == failure.value)
        if after_id is not None:
            query = query.where(notifications.c.id < after_id)
        if lead_id:
            query = query.where(notifications.c.lead_id == lead_id)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]


    def summarised_chats(self, day: date) -> set[str]:
        """The chats whose summary of `day` is queued already (by any replica)."""
        query = sa.select(daily_summaries.c.chat_id).where(daily_summaries.c.day == day)
        with self.engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def queue_summary(self, chat_id: str, day: date, parts: Sequence[str]) -> bool:
        """Queue `parts` (the summary's messages, in order) for `chat_id`, once per
        chat and day: the (chat, day) row and the messages are inserted in one
        transaction, so a second caller (another replica, a restart) queues nothing
        and gets False, and a crash leaves neither. The messages follow the chat's
        moves and go out through the outbox, due at once."""
        if not parts or len(parts) >= SUMMARY_PARTS:
            raise ValueError(f"a summary has 1 to {SUMMARY_PARTS - 1} parts, not {len(parts)}")
        at = now()
        with self.engine.begin() as conn:
            inserted = conn.execute(
                insert_ignoring_conflicts(self.engine, daily_summaries)
                .values(chat_id=chat_id, day=day, parts=len(parts), created_at=at)
                .returning(daily_summaries.c.id)
            ).scalar()
            if inserted is None:
                return False
            target = current_chat(_moves_from(conn, {chat_id}), chat_id)
            conn.execute(
                sa.insert(notifications),
                [
                    {
                        "account_id": SUMMARY_ACCOUNT_ID,
                        "lead_id": -(inserted * SUMMARY_PARTS + number),
                        "chat_id": target,
                        "text": text,
                        "status": Status.PENDING.value,
                        "error": "",
                        "attempts": 0,
                        "next_attempt_at": at,
                        "created_at": at,
                        "amount": None,
                        "digest_entry": None,
                        "failure": Failure.NONE.value,
                        "moved_from_chat_id": chat_id if target != chat_id else None,
                    }
                    for number, text in enumerate(parts)
                ],
            )
        return True
