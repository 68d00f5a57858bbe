"""all_sales_tracking and lead_reversals: the only module of traffic_svc that
names its tables.

A sale is credited once per (account, lead), kept and marked reversed when the
deal leaves won, kept and marked re-attributed when new routing rules credit
another targetologist with the lead: amoroute.ledger decides,
amoroute.ledger_store writes, and this module says how a sale is stored and
read, and answers the dashboard's queries.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from amoroute import ledger_store
from amoroute.db import row_reader
from amoroute.ledger import Recorded, Reversed

__all__ = ["NewSale", "Recorded", "Reversed", "SaleRow", "SalesStore", "StatsRow", "sales"]

metadata = sa.MetaData()

sales = ledger_store.credits_table(
    "all_sales_tracking",
    metadata,
    sa.Column("targetologist", sa.String(200), nullable=False),
    *ledger_store.utm_columns(),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("deal_name", sa.Text, nullable=False),
    sa.Column("won_at", sa.DateTime(timezone=True), nullable=True),
    unique="uq_sales_account_lead",
)

reversals = ledger_store.reversals_table(metadata)


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
    # When credited to another beneficiary instead (then reversed "re-attributed");
    # unset while this is the lead's live credit.
    reattributed_at: datetime | None


@dataclass(frozen=True)
class StatsRow:
    targetologist: str
    sales: int
    revenue: int
    reversed_sales: int
    reversed_revenue: int


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
    def key(self) -> ledger_store.Key:
        return self.account_id, self.lead_id


# PERF: rows read by position, not by attribute (every row of a batch is read);
# measured by python -m bench.ab
_sale_values = row_reader(sales)


class SalesStore(ledger_store.LedgerStore[SaleRow, NewSale]):
    """Sales credited by amoroute.ledger's rule, and the traffic dashboard's reads."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, sales, reversals)

    def _values(self, item: NewSale) -> dict[str, object]:
        return {"targetologist": item.targetologist}

    def _row(self, r: Sequence[Any]) -> SaleRow:
        c = _sale_values(r)
        return SaleRow(**ledger_store.stored_fields(c), targetologist=c["targetologist"])

    def page(
        self,
        *,
        limit: int,
        after_id: int | None,
        lead_id: int = 0,
        targetologist: str = "",
        won_from: datetime | None = None,
        won_to: datetime | None = None,
    ) -> list[SaleRow]:
        """Newest first, `limit` rows strictly older than `after_id`, won in
        [won_from, won_to) when given."""
        query = sa.select(sales).order_by(sales.c.id.desc()).limit(limit)
        query = ledger_store.won_within(query, sales, won_from, won_to)
        if after_id is not None:
            query = query.where(sales.c.id < after_id)
        if lead_id:
            query = query.where(sales.c.lead_id == lead_id)
        if targetologist:
            query = query.where(sa.func.lower(sales.c.targetologist) == targetologist.lower())
        with self.engine.connect() as conn:
            return [self._row(r) for r in conn.execute(query)]

    def stats(
        self, *, won_from: datetime | None, won_to: datetime | None, targetologist: str = ""
    ) -> list[StatsRow]:
        """Credited and reversed sales per targetologist, biggest revenue first."""
        query = (
            sa.select(sales.c.targetologist, *ledger_store.tally(sales))
            .group_by(sales.c.targetologist)
            .order_by(sa.desc("credited_amount"), sales.c.targetologist)
        )
        query = ledger_store.won_within(query, sales, won_from, won_to)
        if targetologist:
            query = query.where(sa.func.lower(sales.c.targetologist) == targetologist.lower())
        with self.engine.connect() as conn:
            return [
                StatsRow(
                    r.targetologist,
                    r.credited,
                    int(r.credited_amount),
                    r.reversed,
                    int(r.reversed_amount),
                )
                for r in conn.execute(query)
            ]
