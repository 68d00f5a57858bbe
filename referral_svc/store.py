"""referral_conversions, referral_partners and lead_reversals: the only module of
referral_svc that names its tables.

A conversion is credited once per (account, lead), kept and marked reversed when
the deal leaves won, kept and marked re-attributed when new routing rules credit
another code with the lead: amoroute.ledger decides, amoroute.ledger_store writes, and
this module says how a conversion is stored and read (with whether its code has
a registered partner), keeps the partners, and answers the program's queries.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from amoroute import ledger_store
from amoroute.db import insert_ignoring_conflicts, row_reader
from amoroute.ledger import Recorded, Reversed
from amoroute.timeutil import now

__all__ = [
    "ConversionRow",
    "NewConversion",
    "PartnerRow",
    "Recorded",
    "ReferralStore",
    "Reversed",
    "StatsRow",
    "conversions",
    "partners",
]

metadata = sa.MetaData()

conversions = ledger_store.credits_table(
    "referral_conversions",
    metadata,
    sa.Column("referral_code", sa.String(64), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("deal_name", sa.Text, nullable=False),
    sa.Column("won_at", sa.DateTime(timezone=True), nullable=True),
    *ledger_store.utm_columns(),
    unique="uq_referral_conversions_account_lead",
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

reversals = ledger_store.reversals_table(metadata)

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
    reversed_at: datetime | None
    reversal_reason: str | None
    # When credited to another beneficiary instead (then reversed "re-attributed");
    # unset while this is the lead's live credit.
    reattributed_at: datetime | None


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
    reversed_conversions: int
    reversed_amount: int


@dataclass(frozen=True)
class NewConversion:
    """A won deal to credit to its referral code, as RecordConversion receives it.
    `referral_code` must already be upper-cased."""

    account_id: int
    lead_id: int
    referral_code: str
    amount: int
    deal_name: str
    won_at: datetime | None
    utm: dict[str, str]

    @property
    def key(self) -> ledger_store.Key:
        return self.account_id, self.lead_id


# PERF: rows read by position, not by attribute (every row of a batch is read);
# measured by python -m bench.ab
_conversion_values = row_reader(conversions)
_WIDTH = len(conversions.c)  # the conversion's columns come first in a row read


def _conversion(r: Sequence[Any], partner_registered: bool) -> ConversionRow:
    """A stored conversion from the table's columns of `r`."""
    c = _conversion_values(r)
    return ConversionRow(
        **ledger_store.stored_fields(c),
        referral_code=c["referral_code"],
        partner_registered=partner_registered,
    )


class ReferralStore(ledger_store.LedgerStore[ConversionRow, NewConversion]):
    """Conversions credited by amoroute.ledger's rule, the partners, and the
    referral program's reads."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, conversions, reversals)

    def _values(self, item: NewConversion) -> dict[str, object]:
        return {"referral_code": item.referral_code}

    def _select(self) -> sa.Select[Any]:
        return _conversion_query

    def _row(self, r: Sequence[Any]) -> ConversionRow:
        return _conversion(r[:_WIDTH], partner_registered=bool(r[_WIDTH]))

    def _inserted(
        self, conn: Connection, returned: Sequence[sa.Row[Any]]
    ) -> list[ConversionRow]:
        if not returned:
            return []
        # RETURNING cannot join, so the partner flag of new rows is looked up apart.
        codes = {r.referral_code for r in returned}
        registered = set(
            conn.scalars(
                sa.select(partners.c.referral_code).where(partners.c.referral_code.in_(codes))
            )
        )
        return [_conversion(r, partner_registered=r.referral_code in registered) for r in returned]

    def page(
        self,
        *,
        limit: int,
        after_id: int | None,
        lead_id: int = 0,
        referral_code: str = "",
        won_from: datetime | None = None,
        won_to: datetime | None = None,
    ) -> list[ConversionRow]:
        """Newest first, `limit` rows strictly older than `after_id`, won in
        [won_from, won_to) when given."""
        query = _conversion_query.order_by(conversions.c.id.desc()).limit(limit)
        query = ledger_store.won_within(query, conversions, won_from, won_to)
        if after_id is not None:
            query = query.where(conversions.c.id < after_id)
        if lead_id:
            query = query.where(conversions.c.lead_id == lead_id)
        if referral_code:
            query = query.where(conversions.c.referral_code == referral_code.upper())
        with self.engine.connect() as conn:
            return [self._row(r) for r in conn.execute(query)]

    def stats(
        self, *, won_from: datetime | None, won_to: datetime | None, referral_code: str = ""
    ) -> list[StatsRow]:
        """Credited and reversed conversions and amounts per code with its partner's
        terms, biggest credited amount first."""
        query = (
            sa.select(
                conversions.c.referral_code,
                *ledger_store.tally(conversions),
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
            .order_by(sa.desc("credited_amount"), conversions.c.referral_code)
        )
        query = ledger_store.won_within(query, conversions, won_from, won_to)
        if referral_code:
            query = query.where(conversions.c.referral_code == referral_code.upper())
        with self.engine.connect() as conn:
            return [
                StatsRow(
                    referral_code=r.referral_code,
                    conversions=int(r.credited),
                    amount_total=int(r.credited_amount),
                    partner_registered=bool(r.partner_registered),
                    partner_name=r.name or "",
                    commission_bp=r.commission_bp or 0,
                    reversed_conversions=int(r.reversed),
                    reversed_amount=int(r.reversed_amount),
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
