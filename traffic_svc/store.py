"""all_sales_tracking: the only module of traffic_svc that writes SQL."""

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from amoroute.contract import UTM_KEYS
from amoroute.db import insert_ignoring_conflicts
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
    sa.UniqueConstraint("account_id", "lead_id", name="uq_sales_account_lead"),
)


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


@dataclass(frozen=True)
class StatsRow:
    targetologist: str
    sales: int
    revenue: int


def _row(r: sa.Row) -> SaleRow:
    return SaleRow(
        id=r.id,
        account_id=r.account_id,
        lead_id=r.lead_id,
        targetologist=r.targetologist,
        utm={k: getattr(r, f"utm_{k}") for k in UTM_KEYS},
        amount=r.amount,
        deal_name=r.deal_name,
        won_at=utc(r.won_at) if r.won_at else None,
        recorded_at=utc(r.recorded_at),
    )


class SalesStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(
        self,
        *,
        account_id: int,
        lead_id: int,
        targetologist: str,
        utm: dict[str, str],
        amount: int,
        deal_name: str,
        won_at: datetime | None,
    ) -> tuple[SaleRow, bool]:
        """Insert the sale unless the lead has one; returns (stored row, duplicate)."""
        values = {
            "account_id": account_id,
            "lead_id": lead_id,
            "targetologist": targetologist,
            **{f"utm_{k}": utm.get(k, "") for k in UTM_KEYS},
            "amount": amount,
            "deal_name": deal_name,
            "won_at": won_at,
            "recorded_at": now(),
        }
        with self.engine.begin() as conn:
            inserted = conn.execute(
                insert_ignoring_conflicts(self.engine, sales).values(**values).returning(sales.c.id)
            ).first()
            row = conn.execute(
                sa.select(sales).where(sales.c.account_id == account_id, sales.c.lead_id == lead_id)
            ).one()
        return _row(row), inserted is None

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
        """Sales count and revenue per targetologist, biggest revenue first."""
        query = (
            sa.select(
                sales.c.targetologist,
                sa.func.count().label("sales"),
                sa.func.coalesce(sa.func.sum(sales.c.amount), 0).label("revenue"),
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
            rows = conn.execute(query)
            return [StatsRow(r.targetologist, int(r.sales), int(r.revenue)) for r in rows]
