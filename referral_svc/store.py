"""referral_conversions and referral_partners: the only module of referral_svc that writes SQL."""

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from amoroute.contract import UTM_KEYS
from amoroute.db import insert_ignoring_conflicts
from amoroute.timeutil import now, utc

metadata = sa.MetaData()

conversions = sa.Table(
    "referral_conversions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("account_id", sa.BigInteger, nullable=False),
    sa.Column("lead_id", sa.BigInteger, nullable=False),
    sa.Column("referral_code", sa.String(64), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("deal_name", sa.Text, nullable=False),
    sa.Column("won_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("utm_source", sa.Text, nullable=False),
    sa.Column("utm_medium", sa.Text, nullable=False),
    sa.Column("utm_campaign", sa.Text, nullable=False),
    sa.Column("utm_content", sa.Text, nullable=False),
    sa.Column("utm_term", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("account_id", "lead_id", name="uq_referral_conversions_account_lead"),
)

partners = sa.Table(
    "referral_partners",
    metadata,
    sa.Column("referral_code", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("commission_bp", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Both tables hold codes upper-cased, so the join is a plain equality on indexed columns.
_conversions_and_partners = conversions.outerjoin(
    partners, partners.c.referral_code == conversions.c.referral_code
)
_partner_registered = partners.c.referral_code.is_not(None).label("partner_registered")
# A conversion as stored, plus whether its code has a partner now (not when recorded).
_conversion_query = sa.select(conversions, _partner_registered).select_from(
    _conversions_and_partners
)


@dataclass(frozen=True)
class ConversionRow:
    id: int
    account_id: int
    lead_id: int
    referral_code: str
    amount: int
    deal_name: str
    won_at: datetime | None
    utm: dict[str, str]
    partner_registered: bool
    recorded_at: datetime


@dataclass(frozen=True)
class PartnerRow:
    referral_code: str
    name: str
    commission_bp: int


@dataclass(frozen=True)
class StatsRow:
    referral_code: str
    conversions: int
    amount_total: int
    partner_registered: bool
    partner_name: str
    commission_bp: int


def _conversion(r: sa.Row) -> ConversionRow:
    return ConversionRow(
        id=r.id,
        account_id=r.account_id,
        lead_id=r.lead_id,
        referral_code=r.referral_code,
        amount=r.amount,
        deal_name=r.deal_name,
        won_at=utc(r.won_at) if r.won_at else None,
        utm={k: getattr(r, f"utm_{k}") for k in UTM_KEYS},
        partner_registered=bool(r.partner_registered),
        recorded_at=utc(r.recorded_at),
    )


class ReferralStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(
        self,
        *,
        account_id: int,
        lead_id: int,
        referral_code: str,
        amount: int,
        deal_name: str,
        won_at: datetime | None,
        utm: dict[str, str],
    ) -> tuple[ConversionRow, bool]:
        """Insert the conversion unless the lead has one; returns (stored row, duplicate).

        `referral_code` must already be upper-cased."""
        values = {
            "account_id": account_id,
            "lead_id": lead_id,
            "referral_code": referral_code,
            "amount": amount,
            "deal_name": deal_name,
            "won_at": won_at,
            **{f"utm_{k}": utm.get(k, "") for k in UTM_KEYS},
            "recorded_at": now(),
        }
        with self.engine.begin() as conn:
            inserted = conn.execute(
                insert_ignoring_conflicts(self.engine, conversions)
                .values(**values)
                .returning(conversions.c.id)
            ).first()
            row = conn.execute(
                _conversion_query.where(
                    conversions.c.account_id == account_id, conversions.c.lead_id == lead_id
                )
            ).one()
        return _conversion(row), inserted is None

    def page(
        self, *, limit: int, after_id: int | None, lead_id: int = 0, referral_code: str = ""
    ) -> list[ConversionRow]:
        """Newest first, `limit` rows strictly older than `after_id`."""
        query = _conversion_query.order_by(conversions.c.id.desc()).limit(limit)
        if after_id is not None:
            query = query.where(conversions.c.id < after_id)
        if lead_id:
            query = query.where(conversions.c.lead_id == lead_id)
        if referral_code:
            query = query.where(conversions.c.referral_code == referral_code.upper())
        with self.engine.connect() as conn:
            return [_conversion(r) for r in conn.execute(query)]

    def stats(
        self, *, won_from: datetime | None, won_to: datetime | None, referral_code: str = ""
    ) -> list[StatsRow]:
        """Conversions and amount per code with its partner's terms, biggest amount first."""
        query = (
            sa.select(
                conversions.c.referral_code,
                sa.func.count().label("conversions"),
                sa.func.coalesce(sa.func.sum(conversions.c.amount), 0).label("amount_total"),
                _partner_registered,
                partners.c.name,
                partners.c.commission_bp,
            )
            .select_from(_conversions_and_partners)
            .group_by(
                conversions.c.referral_code,
                partners.c.referral_code,
                partners.c.name,
                partners.c.commission_bp,
            )
            .order_by(sa.desc("amount_total"), conversions.c.referral_code)
        )
        if won_from is not None:
            query = query.where(conversions.c.won_at >= won_from)
        if won_to is not None:
            query = query.where(conversions.c.won_at < won_to)
        if referral_code:
            query = query.where(conversions.c.referral_code == referral_code.upper())
        with self.engine.connect() as conn:
            return [
                StatsRow(
                    referral_code=r.referral_code,
                    conversions=int(r.conversions),
                    amount_total=int(r.amount_total),
                    partner_registered=bool(r.partner_registered),
                    partner_name=r.name or "",
                    commission_bp=r.commission_bp or 0,
                )
                for r in conn.execute(query)
            ]

    def upsert_partner(
        self, *, referral_code: str, name: str, commission_bp: int
    ) -> tuple[PartnerRow, bool]:
        """Register the code's partner or update its name and commission; returns
        (stored partner, created). `referral_code` must already be upper-cased."""
        stamp = now()
        with self.engine.begin() as conn:
            inserted = conn.execute(
                insert_ignoring_conflicts(self.engine, partners)
                .values(
                    referral_code=referral_code,
                    name=name,
                    commission_bp=commission_bp,
                    created_at=stamp,
                    updated_at=stamp,
                )
                .returning(partners.c.referral_code)
            ).first()
            if inserted is None:
                conn.execute(
                    sa.update(partners)
                    .where(partners.c.referral_code == referral_code)
                    .values(name=name, commission_bp=commission_bp, updated_at=stamp)
                )
        return PartnerRow(referral_code, name, commission_bp), inserted is not None
