"""The SQL that applies amoroute.ledger's decisions to a service's own tables.

A service that credits won deals keeps a table of credits, one live row per
(account, lead): the deal (amount, deal_name, won_at, the UTM marks), its
beneficiary (the service's own columns) and its state (recorded_at,
reversed_at, reversal_reason, reattributed_at), built by `credits_table`; a
lead's credits re-attributed to another beneficiary stay in the table, marked
with reattributed_at and reversed, beside its live one; and lead_reversals,
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
    lead_id, one live row each: `unique` names that partial unique index), then
    `columns` (the service's own, the deal's), then when recorded, whether and
    why reversed, and when re-attributed (not live since). Its service's
    migrations create it with the columns in this order."""
    live = sa.text("reattributed_at IS NULL")
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
        sa.Column("reattributed_at", sa.DateTime(timezone=True)),
        sa.Index(
            unique, "account_id", "lead_id", unique=True, postgresql_where=live, sqlite_where=live
        ),
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
        "reattributed_at": utc(c["reattributed_at"]) if c["reattributed_at"] else None,
    }


def tally(table: sa.Table) -> list[sa.Label[Any]]:
    """Aggregates over a group of `table`'s credits: how many count (`credited`)
    and the sum of their `amount` column (`credited_amount`), how many are
    reversed (`reversed`) and theirs (`reversed_amount`). A re-attributed credit
    is always reversed, so it counts among the reversed, never in revenue."""
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

    @property
    def reversal_reason(self) -> str | None: ...

    @property
    def reattributed_at(self) -> datetime | None: ...


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
# What recording a won deal did: the lead's live credit now, what happened, and
# when the credit was re-attributed, the credit it replaced (None otherwise).
Answer = tuple[RowT, Recorded, RowT | None]


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

    def record(self, item: NewT, reattribute: bool = False) -> Answer[RowT]:
        """Credit the lead unless it is credited already or a newer reversal is
        known; returns the stored row, what happened and the credit replaced.
        With `reattribute`, a lead credited to another beneficiary is credited to
        this one instead (the other credit kept as re-attributed)."""
        return self.record_many([item], [reattribute])[0]

    def record_many(
        self, items: Sequence[NewT], reattribute: Sequence[bool] = ()
    ) -> list[Answer[RowT]]:
        """Record each item exactly as `record` would, one after the other, in one
        transaction; `reattribute[i]` (default False) is item i's `reattribute`.
        Returns `record`'s answer per item, in order.

        A lead twice in `items` is inserted by the first and answered by the
        next as a duplicate (or a reinstatement) of that row. Three statements
        at most (and what `_inserted` adds), plus one UPDATE when a lead is won
        again after its reversal, and an UPDATE and an INSERT when credits are
        re-attributed."""
        if not items:
            return []
        recorded_at = now()
        with self.engine.begin() as conn:
            if not any(reattribute):
                # PERF: every won deal takes this path: one round, no lock, no
                # statement more than before re-attribution; measured by python -m bench.ab
                return self._record_round(conn, items, set(), recorded_at)
            # A lead at most once per round, so that its re-attributions in one
            # batch apply one after the other, each to the credit the last made.
            results: dict[int, Answer[RowT]] = {}
            for round_ in _rounds([item.key for item in items]):
                keys = {items[i].key for i in round_ if reattribute[i]}
                answered = self._record_round(conn, [items[i] for i in round_], keys, recorded_at)
                results.update(zip(round_, answered, strict=True))
            return [results[i] for i in range(len(items))]

    def _record_round(
        self,
        conn: Connection,
        items: Sequence[NewT],
        reattribute: set[Key],
        recorded_at: datetime,
    ) -> list[Answer[RowT]]:
        """`record_many` of `items` on `conn`; the leads in `reattribute` appear
        once in `items`."""
        firsts: dict[Key, NewT] = {}
        for item in items:
            firsts.setdefault(item.key, item)
        # Every batch inserts and updates in key order, so two batches sharing
        # leads wait for each other instead of deadlocking.
        keys = sorted(firsts)
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
            [self._insert_values(firsts[k], _reversal(inserts[k]), recorded_at) for k in keys],
        )
        stored = {(row.account_id, row.lead_id): row for row in self._inserted(conn, returned)}
        fresh = set(stored)  # inserted leads whose first item is not answered yet
        if already := [k for k in keys if k not in fresh]:
            # Re-attributed credits are locked until commit, so a concurrent
            # re-attribution of the lead waits and then decides on what this wrote.
            stored.update(self._live_rows(conn, already, lock=bool(reattribute)))
        results: list[Answer[RowT]] = []
        reinstated: dict[Key, RowT] = {}
        # Lead -> (its credit re-attributed, the new credit, index in results).
        moved: dict[Key, tuple[RowT, dict[str, object], int]] = {}
        for item in items:
            row = stored[item.key]
            if item.key in fresh:
                fresh.remove(item.key)
                results.append((row, inserts[item.key].outcome, None))
                continue
            if item.key in reattribute:
                decision = ledger.reattribute(
                    row,
                    item.won_at,
                    recorded_at,
                    other_beneficiary=self._other_beneficiary(row, item),
                )
            else:
                decision = ledger.credit(row, item.won_at)
            match decision:
                case ledger.Duplicate():
                    pass
                case ledger.Reinstate(won_at=won_at):
                    row = replace(row, won_at=won_at, reversed_at=None, reversal_reason=None)
                    stored[item.key] = reinstated[item.key] = row
                case ledger.Reattribute(at=at, reversal=reversal):
                    old = replace(
                        row,
                        reattributed_at=at,
                        reversed_at=row.reversed_at or at,
                        reversal_reason=(
                            row.reversal_reason if row.reversed_at else ledger.REATTRIBUTED
                        ),
                    )
                    new = self._insert_values(item, reversal, recorded_at)
                    moved[item.key] = (old, new, len(results))
                case _:
                    raise AssertionError(f"{decision} for lead {item.key}, credited already")
            results.append((row, decision.outcome, None))
        if reinstated:
            conn.execute(
                sa.update(self.table)
                .where(self.table.c.id == sa.bindparam("row_id"))
                .values(
                    won_at=sa.bindparam("won_again_at"), reversed_at=None, reversal_reason=None
                ),
                [{"row_id": r.id, "won_again_at": r.won_at} for _, r in sorted(reinstated.items())],
            )
        if moved:
            self._move(conn, moved, results)
        return results

    def _move(
        self,
        conn: Connection,
        moved: dict[Key, tuple[RowT, dict[str, object], int]],
        results: list[Answer[RowT]],
    ) -> None:
        """Mark the credits in `moved` re-attributed, then insert their new
        credits (the partial unique index allows one live row per lead), in key
        order; the new credits take their place in `results`."""
        order = sorted(moved)
        conn.execute(
            sa.update(self.table)
            .where(self.table.c.id == sa.bindparam("row_id"))
            .values(
                reattributed_at=sa.bindparam("moved_at"),
                reversed_at=sa.bindparam("moved_reversed_at"),
                reversal_reason=sa.bindparam("moved_reason"),
            ),
            [
                {
                    "row_id": old.id,
                    "moved_at": old.reattributed_at,
                    "moved_reversed_at": old.reversed_at,
                    "moved_reason": old.reversal_reason,
                }
                for old, _, _ in (moved[k] for k in order)
            ],
        )
        returned = insert_ignoring_conflicts_returning(
            conn, self.table, [moved[k][1] for k in order]
        )
        inserted = {(r.account_id, r.lead_id): r for r in self._inserted(conn, returned)}
        for key in order:
            if key not in inserted:
                # Only a live credit written past this transaction's lock gets here.
                raise RuntimeError(
                    f"lead {key[1]} (account {key[0]}) got another live credit while "
                    "being re-attributed; retry"
                )
            old = moved[key][0]
            results[moved[key][2]] = (inserted[key], Recorded.REATTRIBUTED, old)

    def _live_rows(self, conn: Connection, keys: list[Key], *, lock: bool) -> dict[Key, RowT]:
        """The live credits of the leads `keys` (each has one); with `lock`, every
        credit of those leads is locked first, until commit (PostgreSQL)."""
        table = self.table
        if lock and conn.dialect.name == "postgresql":
            # Every credit of the lead, the first one included, which is never
            # re-attributed away: concurrent re-attributions of a lead all queue
            # on it, in key order, and each then reads the live credit the last
            # one left (the read below is a statement of its own, so it sees it).
            conn.execute(
                sa.select(table.c.id)
                .where(self._among(conn, table, keys))
                .order_by(table.c.account_id, table.c.lead_id, table.c.id)
                .with_for_update()
            )
        query = self._select().where(self._among(conn, table, keys), self._live())
        found = {(r.account_id, r.lead_id): r for r in map(self._row, conn.execute(query))}
        if missing := [k for k in keys if k not in found]:
            raise RuntimeError(f"leads {missing} lost their live credit while recorded; retry")
        return found

    def _locked_live_row(self, conn: Connection, account_id: int, lead_id: int) -> RowT | None:
        """The lead's live credit, with every credit of the lead locked until
        commit (PostgreSQL), so a concurrent change of the lead waits and then
        decides on what this wrote."""
        table = self.table
        of_lead = (table.c.account_id == account_id) & (table.c.lead_id == lead_id)
        rows = [
            self._row(r)
            for r in conn.execute(
                self._select().where(of_lead).order_by(table.c.id).with_for_update(of=table)
            )
        ]
        live = [r for r in rows if r.reattributed_at is None]
        if rows and not live:
            # Re-attributed while this waited for the lock: its successor is newer
            # than that statement, and read now (it cannot move while this holds
            # the lead's first credit).
            found = conn.execute(self._select().where(of_lead, self._live())).first()
            live = [self._row(found)] if found is not None else []
        return live[0] if live else None

    def _live(self) -> sa.ColumnElement[bool]:
        """The lead's live credit, not re-attributed (the partial index's predicate)."""
        return self.table.c.reattributed_at.is_(None)

    def _other_beneficiary(self, row: RowT, item: NewT) -> bool:
        """`row` credits someone other than `item` would."""
        return any(getattr(row, column) != value for column, value in self._values(item).items())

    def reverse(
        self, *, account_id: int, lead_id: int, reversed_at: datetime | None, reason: str
    ) -> tuple[RowT | None, Reversed]:
        """Mark the lead's credit reversed if this reversal is newer than its win;
        with no credit yet, remember the reversal for a late "won"."""
        at = reversed_at or now()
        table, reversals = self.table, self.reversals
        with self.engine.begin() as conn:
            row = self._locked_live_row(conn, account_id, lead_id)
            if row is not None:
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

    def withdraw(
        self, *, account_id: int, lead_id: int, reason: str
    ) -> tuple[RowT | None, Reversed]:
        """Re-attribute the lead to nobody: its live credit, if any and not reversed
        already, is reversed now for "re-attributed: `reason`" (kept, visible, no
        revenue). A lead with no credit is left alone: nothing is remembered."""
        at = now()
        with self.engine.begin() as conn:
            row = self._locked_live_row(conn, account_id, lead_id)
            decision = ledger.withdraw(row, at, reason)
            match decision:
                case ledger.NothingToWithdraw() | ledger.AlreadyReversed():
                    pass
                case ledger.Reverse(reason=stored_reason) if row is not None:
                    conn.execute(
                        sa.update(self.table)
                        .where(self.table.c.id == row.id)
                        .values(reversed_at=at, reversal_reason=stored_reason)
                    )
                    row = replace(row, reversed_at=utc(at), reversal_reason=stored_reason)
                case _:
                    raise AssertionError(f"{decision} for lead {lead_id}")
            return row, decision.outcome

    def _insert_values(
        self, item: NewT, reversal: ledger.Tombstone | None, recorded_at: datetime
    ) -> dict[str, object]:
        """The row to insert for `item`, reversed by `reversal` when one is given."""
        return {
            "account_id": item.account_id,
            "lead_id": item.lead_id,
            **self._values(item),
            **{column: item.utm.get(key, "") for key, column in UTM_COLUMNS},
            "amount": item.amount,
            "deal_name": item.deal_name,
            "won_at": item.won_at,
            "recorded_at": recorded_at,
            "reversed_at": reversal.reversed_at if reversal else None,
            "reversal_reason": reversal.reason if reversal else None,
        }

    @staticmethod
    def _among(conn: Connection, table: sa.Table, keys: list[Key]) -> sa.ColumnElement[bool]:
        """Rows of `table` whose (account_id, lead_id) is one of `keys`."""
        return keys_among(conn, (table.c.account_id, table.c.lead_id), keys)


def _reversal(decision: ledger.CreditDecision) -> ledger.Tombstone | None:
    """The reversal a credit not stored yet is inserted with, as `decision` says."""
    match decision:
        case ledger.Insert():
            return None
        case ledger.Supersede(reversal=reversal):
            return reversal
        case _:
            raise AssertionError(f"{decision} for a lead not credited yet")


def _rounds(keys: list[Key]) -> list[list[int]]:
    """The indexes of `keys` in rounds where each key appears at most once, in order."""
    seen: dict[Key, int] = {}
    rounds: list[list[int]] = []
    for i, key in enumerate(keys):
        n = seen[key] = seen.get(key, -1) + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(i)
    return rounds
