"""all_sales_tracking: the only module of traffic_svc that writes SQL.

A sale is credited once per (account, lead). When the deal leaves won, the
sale is kept and marked reversed; a reversal that arrives before the sale it
undoes (AmoCRM retries deliver out of order) is remembered in lead_reversals,
so the older "won" is stored as reversed and credits nothing. Deal times
(won_at, reversed_at) decide which event is newer, never arrival order.
"""

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from amoroute.contract import UTM_KEYS
from amoroute.db import (
    insert_ignoring_conflicts,
    insert_ignoring_conflicts_returning,
    keys_among,
    row_reader,
)
from amoroute.timeutil import now, utc

metadata = sa.MetaData()

sales = sa.Table(
    "all_sales_tracking",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("account_id", sa.BigInteger, nullable=False),
    sa.Column("lead_id", sa.BigInteger, nullable=False),
    sa.Column("targetologist", sa.String(200), nullable=False),
    sa.Column("utm_source", sa.Text, nullable=False),
    sa.Column("utm_medium", sa.Text, nullable=False),
    sa.Column("utm_campaign", sa.Text, nullable=False),
    sa.Column("utm_content", sa.Text, nullable=False),
    sa.Column("utm_term", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("deal_name", sa.Text, nullable=False),
    sa.Column("won_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reversed_at", sa.DateTime(timezone=True)),
    sa.Column("reversal_reason", sa.Text),
    sa.UniqueConstraint("account_id", "lead_id", name="uq_sales_account_lead"),
)

reversals = sa.Table(
    "lead_reversals",
    metadata,
    sa.Column("account_id", sa.BigInteger, primary_key=True),
    sa.Column("lead_id", sa.BigInteger, primary_key=True),
    sa.Column("reversed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)


class Recorded(enum.Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    # A newer reversal was already known: stored as reversed, not credited.
    SUPERSEDED = "superseded"
    # The deal was won again after its reversal: credited again.
    REINSTATED = "reinstated"


class Reversed(enum.Enum):
    REVERSED = "reversed"
    ALREADY_REVERSED = "already_reversed"
    STALE = "stale"
    NOT_CREDITED = "not_credited"


@dataclass(frozen=True)
class SaleRow:
    id: int
    account_id: int
    lead_id: int
    targetologist: str
    utm: dict[str, str]
    amount: int
    deal_name: str
    won_at: datetime | None
    recorded_at: datetime
    reversed_at: datetime | None
    reversal_reason: str | None


@dataclass(frozen=True)
class StatsRow:
    targetologist: str
    sales: int
    revenue: int
    reversed_sales: int
    reversed_revenue: int


_sale_values = row_reader(sales)
_UTM_COLUMNS = tuple((key, f"utm_{key}") for key in UTM_KEYS)


def _row(r: sa.Row) -> SaleRow:
    c = _sale_values(r)
    return SaleRow(
        id=c["id"],
        account_id=c["account_id"],
        lead_id=c["lead_id"],
        targetologist=c["targetologist"],
        utm={key: c[column] for key, column in _UTM_COLUMNS},
        amount=c["amount"],
        deal_name=c["deal_name"],
        won_at=utc(c["won_at"]) if c["won_at"] else None,
        recorded_at=utc(c["recorded_at"]),
        reversed_at=utc(c["reversed_at"]) if c["reversed_at"] else None,
        reversal_reason=c["reversal_reason"],
    )


def _is_newer(when: datetime | None, than: datetime | None) -> bool:
    """Deal time `when` is known to be later than `than`."""
    return when is not None and than is not None and utc(when) > utc(than)


_Key = tuple[int, int]


@dataclass(frozen=True)
class NewSale:
    """A won deal to credit to its targetologist, as RecordSale receives it."""

    account_id: int
    lead_id: int
    targetologist: str
    utm: dict[str, str]
    amount: int
    deal_name: str
    won_at: datetime | None

    @property
    def key(self) -> _Key:
        return self.account_id, self.lead_id


def _among(conn: Connection, table: sa.Table, keys: list[_Key]) -> sa.ColumnElement[bool]:
    """Rows of `table` whose (account_id, lead_id) is one of `keys`."""
    return keys_among(conn, (table.c.account_id, table.c.lead_id), keys)


def _values(sale: NewSale, tombstone: sa.Row | None, recorded_at: datetime) -> dict[str, object]:
    """The row to insert for `sale`: stored reversed when its lead's known
    reversal (`tombstone`) is not older than the win."""
    if tombstone is not None and _is_newer(sale.won_at, tombstone.reversed_at):
        tombstone = None  # won again after that reversal: credited
    return {
        "account_id": sale.account_id,
        "lead_id": sale.lead_id,
        "targetologist": sale.targetologist,
        **{f"utm_{k}": sale.utm.get(k, "") for k in UTM_KEYS},
        "amount": sale.amount,
        "deal_name": sale.deal_name,
        "won_at": sale.won_at,
        "recorded_at": recorded_at,
        "reversed_at": tombstone.reversed_at if tombstone is not None else None,
        "reversal_reason": tombstone.reason if tombstone is not None else None,
    }


class SalesStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, sale: NewSale) -> tuple[SaleRow, Recorded]:
        """Credit the lead's sale unless it is credited already or a newer
        reversal is known; returns the stored row and what happened."""
        return self.record_many([sale])[0]

    def record_many(self, items: Sequence[NewSale]) -> list[tuple[SaleRow, Recorded]]:
        """Record each sale exactly as `record` would, one after the other, in one
        transaction; returns (stored row, what happened) per item, in order.

        A lead twice in `items` is inserted by the first and answered by the
        next as a duplicate (or a reinstatement) of that row. Three statements
        at most, plus one UPDATE when a lead is won again after its reversal."""
        if not items:
            return []
        firsts: dict[_Key, NewSale] = {}
        for item in items:
            firsts.setdefault(item.key, item)
        # Every batch inserts and updates in key order, so two batches sharing
        # leads wait for each other instead of deadlocking.
        keys = sorted(firsts)
        recorded_at = now()
        with self.engine.begin() as conn:
            tombstones = {
                (t.account_id, t.lead_id): t
                for t in conn.execute(sa.select(reversals).where(_among(conn, reversals, keys)))
            }
            inserted = {
                (r.account_id, r.lead_id): _row(r)
                for r in insert_ignoring_conflicts_returning(
                    conn, sales, [_values(firsts[k], tombstones.get(k), recorded_at) for k in keys]
                )
            }
            stored = dict(inserted)
            if already := [k for k in keys if k not in inserted]:
                query = sa.select(sales).where(_among(conn, sales, already))
                stored.update(((r.account_id, r.lead_id), _row(r)) for r in conn.execute(query))
            results: list[tuple[SaleRow, Recorded]] = []
            reinstated: dict[_Key, SaleRow] = {}
            fresh = set(inserted)  # inserted leads whose first item is not answered yet
            for item in items:
                row = stored[item.key]
                if item.key in fresh:
                    fresh.remove(item.key)
                    # A fresh row is stored reversed only when a newer reversal was known.
                    results.append((row, Recorded.SUPERSEDED if row.reversed_at else Recorded.NEW))
                elif item.won_at and row.reversed_at and _is_newer(item.won_at, row.reversed_at):
                    row = replace(
                        row, won_at=utc(item.won_at), reversed_at=None, reversal_reason=None
                    )
                    stored[item.key] = reinstated[item.key] = row
                    results.append((row, Recorded.REINSTATED))
                else:
                    results.append((row, Recorded.DUPLICATE))
            if reinstated:
                conn.execute(
                    sa.update(sales)
                    .where(sales.c.id == sa.bindparam("row_id"))
                    .values(
                        won_at=sa.bindparam("won_again_at"), reversed_at=None, reversal_reason=None
                    ),
                    [
                        {"row_id": r.id, "won_again_at": r.won_at}
                        for _, r in sorted(reinstated.items())
                    ],
                )
        return results

    def reverse(
        self, *, account_id: int, lead_id: int, reversed_at: datetime | None, reason: str
    ) -> tuple[SaleRow | None, Reversed]:
        """Mark the lead's sale reversed if this reversal is newer than its win;
        with no sale yet, remember the reversal for a late "won"."""
        at = reversed_at or now()
        key = (sales.c.account_id == account_id) & (sales.c.lead_id == lead_id)
        with self.engine.begin() as conn:
            changed = conn.execute(
                sa.update(sales)
                .where(
                    key,
                    sales.c.reversed_at.is_(None),
                    sa.or_(sales.c.won_at.is_(None), sales.c.won_at <= at),
                )
                .values(reversed_at=at, reversal_reason=reason)
                .returning(sales.c.id)
            ).first()
            row = conn.execute(sa.select(sales).where(key)).first()
            if changed is not None:
                return _row(row), Reversed.REVERSED
            if row is not None:
                outcome = Reversed.ALREADY_REVERSED if row.reversed_at else Reversed.STALE
                return _row(row), outcome
            tombstone = conn.execute(
                sa.select(reversals.c.reversed_at).where(
                    reversals.c.account_id == account_id, reversals.c.lead_id == lead_id
                )
            ).first()
            if tombstone is None:
                conn.execute(
                    insert_ignoring_conflicts(self.engine, reversals).values(
                        account_id=account_id, lead_id=lead_id, reversed_at=at, reason=reason
                    )
                )
            elif _is_newer(at, tombstone.reversed_at):
                conn.execute(
                    sa.update(reversals)
                    .where(reversals.c.account_id == account_id, reversals.c.lead_id == lead_id)
                    .values(reversed_at=at, reason=reason)
                )
            return None, Reversed.NOT_CREDITED

    def page(
        self, *, limit: int, after_id: int | None, lead_id: int = 0, targetologist: str = ""
    ) -> list[SaleRow]:
        """Newest first, `limit` rows strictly older than `after_id`."""
        query = sa.select(sales).order_by(sales.c.id.desc()).limit(limit)
        if after_id is not None:
            query = query.where(sales.c.id < after_id)
        if lead_id:
            query = query.where(sales.c.lead_id == lead_id)
        if targetologist:
            query = query.where(sa.func.lower(sales.c.targetologist) == targetologist.lower())
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def stats(
        self, *, won_from: datetime | None, won_to: datetime | None, targetologist: str = ""
    ) -> list[StatsRow]:
        """Credited and reversed sales per targetologist, biggest revenue first."""
        credited = sales.c.reversed_at.is_(None)
        revenue = sa.func.coalesce(sa.func.sum(sa.case((credited, sales.c.amount), else_=0)), 0)
        query = (
            sa.select(
                sales.c.targetologist,
                sa.func.count().filter(credited).label("sales"),
                revenue.label("revenue"),
                sa.func.count().filter(~credited).label("reversed_sales"),
                sa.func.coalesce(
                    sa.func.sum(sa.case((credited, 0), else_=sales.c.amount)), 0
                ).label("reversed_revenue"),
            )
            .group_by(sales.c.targetologist)
            .order_by(sa.desc("revenue"), sales.c.targetologist)
        )
        if won_from is not None:
            query = query.where(sales.c.won_at >= won_from)
        if won_to is not None:
            query = query.where(sales.c.won_at < won_to)
        if targetologist:
            query = query.where(sa.func.lower(sales.c.targetologist) == targetologist.lower())
        with self.engine.connect() as conn:
            return [
                StatsRow(
                    r.targetologist,
                    r.sales,
                    int(r.revenue),
                    r.reversed_sales,
                    int(r.reversed_revenue),
                )
                for r in conn.execute(query)
            ]
