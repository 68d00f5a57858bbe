"""The SQL that applies amoroute.ledger's decisions to a service's own tables.

A service that credits won deals keeps a table of credits, one row per
(account, lead): the deal (amount, deal_name, won_at, the UTM marks), its
beneficiary (the service's own columns) and its state (recorded_at,
reversed_at, reversal_reason), built by `credits_table`; and lead_reversals,
the reversals that came before any credit (`reversals_table`). Both live in the
service's database and its migrations. Its store subclasses LedgerStore and
says how its own columns are written and read.
"""

import abc
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from amoroute import ledger
from amoroute.contract import UTM_KEYS
from amoroute.db import insert_ignoring_conflicts, insert_ignoring_conflicts_returning, keys_among
from amoroute.ledger import Recorded, Reversed
from amoroute.timeutil import now, utc

Key = tuple[int, int]
# (key in UtmMarks, column): ("source", "utm_source"), …
UTM_COLUMNS = tuple((key, f"utm_{key}") for key in UTM_KEYS)


def credits_table(name: str, metadata: sa.MetaData, *columns: Any, unique: str) -> sa.Table:
    """A service's table of credits in `metadata`: its id and lead (account_id,
    lead_id, one row each: `unique` names that constraint), then `columns` (the
    service's own, the deal's), then when recorded and whether and why reversed.
    Its service's migrations create it with the columns in this order."""
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("account_id", sa.BigInteger, nullable=False),
        sa.Column("lead_id", sa.BigInteger, nullable=False),
        *columns,
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reversed_at", sa.DateTime(timezone=True)),
        sa.Column("reversal_reason", sa.Text),
        sa.UniqueConstraint("account_id", "lead_id", name=unique),
    )


def utm_columns() -> list[sa.Column[Any]]:
    """The credited deal's UTM marks, a column each (utm_source, …)."""
    return [sa.Column(column, sa.Text, nullable=False) for _, column in UTM_COLUMNS]


def reversals_table(metadata: sa.MetaData) -> sa.Table:
    """lead_reversals in `metadata`: the reversal known for a lead with no credit
    yet (its service's migrations create it)."""
    return sa.Table(
        "lead_reversals",
        metadata,
        sa.Column("account_id", sa.BigInteger, primary_key=True),
        sa.Column("lead_id", sa.BigInteger, primary_key=True),
        sa.Column("reversed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )


def stored_fields(c: dict[str, Any]) -> dict[str, Any]:
    """A stored credit's fields but the service's own, from its row's {column:
    value}; times as aware UTC datetimes (SQLite hands naive ones back)."""
    return {
        "id": c["id"],
        "account_id": c["account_id"],
        "lead_id": c["lead_id"],
        "utm": {key: c[column] for key, column in UTM_COLUMNS},
        "amount": c["amount"],
        "deal_name": c["deal_name"],
        "won_at": utc(c["won_at"]) if c["won_at"] else None,
        "recorded_at": utc(c["recorded_at"]),
        "reversed_at": utc(c["reversed_at"]) if c["reversed_at"] else None,
        "reversal_reason": c["reversal_reason"],
    }


def tally(table: sa.Table) -> list[sa.Label[Any]]:
    """Aggregates over a group of `table`'s credits: how many count (`credited`)
    and the sum of their `amount` column (`credited_amount`), how many are
    reversed (`reversed`) and theirs (`reversed_amount`)."""
    counts = table.c.reversed_at.is_(None)
    return [
        sa.func.count().filter(counts).label("credited"),
        sa.func.coalesce(sa.func.sum(sa.case((counts, table.c.amount), else_=0)), 0).label(
            "credited_amount"
        ),
        sa.func.count().filter(~counts).label("reversed"),
        sa.func.coalesce(sa.func.sum(sa.case((counts, 0), else_=table.c.amount)), 0).label(
            "reversed_amount"
        ),
    ]


SelectT = TypeVar("SelectT", bound=sa.Select[Any])


def won_within(
    query: SelectT, table: sa.Table, won_from: datetime | None, won_to: datetime | None
) -> SelectT:
    """`query` limited to the credits of `table` won in [won_from, won_to) (None: open)."""
    if won_from is not None:
        query = query.where(table.c.won_at >= won_from)
    if won_to is not None:
        query = query.where(table.c.won_at < won_to)
    return query


class StoredCredit(Protocol):
    """What LedgerStore reads of a service's row type (a frozen dataclass)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def id(self) -> int: ...

    @property
    def account_id(self) -> int: ...

    @property
    def lead_id(self) -> int: ...

    @property
    def won_at(self) -> datetime | None: ...

    @property
    def reversed_at(self) -> datetime | None: ...


class NewCredit(Protocol):
    """What LedgerStore reads of a won deal to record."""

    @property
    def account_id(self) -> int: ...

    @property
    def lead_id(self) -> int: ...

    @property
    def key(self) -> Key: ...

    @property
    def utm(self) -> dict[str, str]: ...

    @property
    def amount(self) -> int: ...

    @property
    def deal_name(self) -> str: ...

    @property
    def won_at(self) -> datetime | None: ...


RowT = TypeVar("RowT", bound=StoredCredit)
NewT = TypeVar("NewT", bound=NewCredit)


class LedgerStore(abc.ABC, Generic[RowT, NewT]):
    """Records won deals and reversals in `table` and `reversals` by the rule."""

    def __init__(self, engine: Engine, table: sa.Table, reversals: sa.Table) -> None:
        self.engine = engine
        self.table = table
        self.reversals = reversals

    @abc.abstractmethod
    def _values(self, item: NewT) -> dict[str, object]:
        """The service's own columns of `item`'s row (its beneficiary)."""

    @abc.abstractmethod
    def _row(self, r: Sequence[Any]) -> RowT:
        """A stored credit from a row of `_select()`."""

    def _select(self) -> sa.Select[Any]:
        """How stored credits are read: every column of `table`, then any others."""
        return sa.select(self.table)

    def _inserted(self, conn: Connection, returned: Sequence[sa.Row[Any]]) -> list[RowT]:
        """Stored credits from the rows just inserted (every column of `table`)."""
        return [self._row(r) for r in returned]

    def record(self, item: NewT) -> tuple[RowT, Recorded]:
        """Credit the lead unless it is credited already or a newer reversal is
        known; returns the stored row and what happened."""
        return self.record_many([item])[0]

    def record_many(self, items: Sequence[NewT]) -> list[tuple[RowT, Recorded]]:
        """Record each item exactly as `record` would, one after the other, in one
        transaction; returns (stored row, what happened) per item, in order.

        A lead twice in `items` is inserted by the first and answered by the
        next as a duplicate (or a reinstatement) of that row. Three statements
        at most (and what `_inserted` adds), plus one UPDATE when a lead is won
        again after its reversal."""
        if not items:
            return []
        firsts: dict[Key, NewT] = {}
        for item in items:
            firsts.setdefault(item.key, item)
        # Every batch inserts and updates in key order, so two batches sharing
        # leads wait for each other instead of deadlocking.
        keys = sorted(firsts)
        recorded_at = now()
        with self.engine.begin() as conn:
            tombstones = {
                (t.account_id, t.lead_id): ledger.Tombstone(t.reversed_at, t.reason)
                for t in conn.execute(
                    sa.select(self.reversals).where(self._among(conn, self.reversals, keys))
                )
            }
            # Each lead's first item as if the lead had no credit yet: the INSERT
            # skips the leads that have one, and those are decided below.
            inserts = {k: ledger.credit(tombstones.get(k), firsts[k].won_at) for k in keys}
            returned = insert_ignoring_conflicts_returning(
                conn,
                self.table,
                [self._insert_values(firsts[k], inserts[k], recorded_at) for k in keys],
            )
            stored = {(row.account_id, row.lead_id): row for row in self._inserted(conn, returned)}
            fresh = set(stored)  # inserted leads whose first item is not answered yet
            if already := [k for k in keys if k not in fresh]:
                query = self._select().where(self._among(conn, self.table, already))
                stored.update(
                    ((row.account_id, row.lead_id), row)
                    for row in map(self._row, conn.execute(query))
                )
            results: list[tuple[RowT, Recorded]] = []
            reinstated: dict[Key, RowT] = {}
            for item in items:
                row = stored[item.key]
                if item.key in fresh:
                    fresh.remove(item.key)
                    results.append((row, inserts[item.key].outcome))
                    continue
                decision = ledger.credit(row, item.won_at)
                match decision:
                    case ledger.Duplicate():
                        pass
                    case ledger.Reinstate(won_at=won_at):
                        row = replace(row, won_at=won_at, reversed_at=None, reversal_reason=None)
                        stored[item.key] = reinstated[item.key] = row
                    case _:
                        raise AssertionError(f"{decision} for lead {item.key}, credited already")
                results.append((row, decision.outcome))
            if reinstated:
                conn.execute(
                    sa.update(self.table)
                    .where(self.table.c.id == sa.bindparam("row_id"))
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
    ) -> tuple[RowT | None, Reversed]:
        """Mark the lead's credit reversed if this reversal is newer than its win;
        with no credit yet, remember the reversal for a late "won"."""
        at = reversed_at or now()
        table, reversals = self.table, self.reversals
        with self.engine.begin() as conn:
            # The row stays locked until commit (PostgreSQL), so a concurrent
            # reversal of the lead waits and then decides on what this one wrote.
            found = conn.execute(
                self._select()
                .where(table.c.account_id == account_id, table.c.lead_id == lead_id)
                .with_for_update(of=table)
            ).first()
            if found is not None:
                row = self._row(found)
                decision = ledger.reverse(row, at, reason)
                match decision:
                    case ledger.AlreadyReversed() | ledger.Stale():
                        pass
                    case ledger.Reverse():
                        conn.execute(
                            sa.update(table)
                            .where(table.c.id == row.id)
                            .values(reversed_at=at, reversal_reason=reason)
                        )
                        row = replace(row, reversed_at=utc(at), reversal_reason=reason)
                    case _:
                        raise AssertionError(f"{decision} for lead {lead_id}, credited already")
                return row, decision.outcome
            is_lead = (reversals.c.account_id == account_id) & (reversals.c.lead_id == lead_id)
            known = conn.execute(
                sa.select(reversals.c.reversed_at, reversals.c.reason).where(is_lead)
            ).first()
            tombstone = ledger.Tombstone(known.reversed_at, known.reason) if known else None
            decision = ledger.reverse(tombstone, at, reason)
            match decision:
                case ledger.AlreadyRemembered():
                    pass
                case ledger.Remember(tombstone=new) if tombstone is None:
                    conn.execute(
                        insert_ignoring_conflicts(self.engine, reversals).values(
                            account_id=account_id,
                            lead_id=lead_id,
                            reversed_at=new.reversed_at,
                            reason=new.reason,
                        )
                    )
                case ledger.Remember(tombstone=new):
                    conn.execute(
                        sa.update(reversals)
                        .where(is_lead)
                        .values(reversed_at=new.reversed_at, reason=new.reason)
                    )
                case _:
                    raise AssertionError(f"{decision} for lead {lead_id}, not credited")
            return None, decision.outcome

    def _insert_values(
        self, item: NewT, decision: ledger.CreditDecision, recorded_at: datetime
    ) -> dict[str, object]:
        """The row to insert for `item` (not credited yet) as `decision` says."""
        match decision:
            case ledger.Insert():
                reversed_at, reason = None, None
            case ledger.Supersede(reversal=reversal):
                reversed_at, reason = reversal.reversed_at, reversal.reason
            case _:
                raise AssertionError(f"{decision} for lead {item.key}, not credited yet")
        return {
            "account_id": item.account_id,
            "lead_id": item.lead_id,
            **self._values(item),
            **{column: item.utm.get(key, "") for key, column in UTM_COLUMNS},
            "amount": item.amount,
            "deal_name": item.deal_name,
            "won_at": item.won_at,
            "recorded_at": recorded_at,
            "reversed_at": reversed_at,
            "reversal_reason": reason,
        }

    @staticmethod
    def _among(conn: Connection, table: sa.Table, keys: list[Key]) -> sa.ColumnElement[bool]:
        """Rows of `table` whose (account_id, lead_id) is one of `keys`."""
        return keys_among(conn, (table.c.account_id, table.c.lead_id), keys)
