"""referral_conversions and referral_partners: the only module of referral_svc that writes SQL.

A conversion is credited once per (account, lead). When the deal leaves won,
the conversion is kept and marked reversed; a reversal that arrives before the
conversion it undoes (AmoCRM retries deliver out of order) is remembered in
lead_reversals, so the older "won" is stored as reversed and credits nothing.
Deal times (won_at, reversed_at) decide which event is newer, never arrival
order.
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
)
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
    sa.Column("reversed_at", sa.DateTime(timezone=True)),
    sa.Column("reversal_reason", sa.Text),
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

reversals = sa.Table(
    "lead_reversals",
    metadata,
    sa.Column("account_id", sa.BigInteger, primary_key=True),
    sa.Column("lead_id", sa.BigInteger, primary_key=True),
    sa.Column("reversed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
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


def _conversion(r: sa.Row, partner_registered: bool | None = None) -> ConversionRow:
    """A stored conversion; `partner_registered` is needed when `r` comes
    without that column (INSERT … RETURNING)."""
    if partner_registered is None:
        partner_registered = bool(r.partner_registered)
    return ConversionRow(
        id=r.id,
        account_id=r.account_id,
        lead_id=r.lead_id,
        referral_code=r.referral_code,
        amount=r.amount,
        deal_name=r.deal_name,
        won_at=utc(r.won_at) if r.won_at else None,
        utm={k: getattr(r, f"utm_{k}") for k in UTM_KEYS},
        partner_registered=partner_registered,
        recorded_at=utc(r.recorded_at),
        reversed_at=utc(r.reversed_at) if r.reversed_at else None,
        reversal_reason=r.reversal_reason,
    )


def _is_newer(when: datetime | None, than: datetime | None) -> bool:
    """Deal time `when` is known to be later than `than`."""
    return when is not None and than is not None and utc(when) > utc(than)


_Key = tuple[int, int]


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
    def key(self) -> _Key:
        return self.account_id, self.lead_id


def _among(conn: Connection, table: sa.Table, keys: list[_Key]) -> sa.ColumnElement[bool]:
    """Rows of `table` whose (account_id, lead_id) is one of `keys`."""
    return keys_among(conn, (table.c.account_id, table.c.lead_id), keys)


def _values(
    conversion: NewConversion, tombstone: sa.Row | None, recorded_at: datetime
) -> dict[str, object]:
    """The row to insert for `conversion`: stored reversed when its lead's known
    reversal (`tombstone`) is not older than the win."""
    if tombstone is not None and _is_newer(conversion.won_at, tombstone.reversed_at):
        tombstone = None  # won again after that reversal: credited
    return {
        "account_id": conversion.account_id,
        "lead_id": conversion.lead_id,
        "referral_code": conversion.referral_code,
        "amount": conversion.amount,
        "deal_name": conversion.deal_name,
        "won_at": conversion.won_at,
        **{f"utm_{k}": conversion.utm.get(k, "") for k in UTM_KEYS},
        "recorded_at": recorded_at,
        "reversed_at": tombstone.reversed_at if tombstone is not None else None,
        "reversal_reason": tombstone.reason if tombstone is not None else None,
    }


class ReferralStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, conversion: NewConversion) -> tuple[ConversionRow, Recorded]:
        """Credit the lead's conversion unless it is credited already or a newer
        reversal is known; returns the stored row and what happened."""
        return self.record_many([conversion])[0]

    def record_many(self, items: Sequence[NewConversion]) -> list[tuple[ConversionRow, Recorded]]:
        """Record each conversion exactly as `record` would, one after the other,
        in one transaction; returns (stored row, what happened) per item, in order.

        A lead twice in `items` is inserted by the first and answered by the
        next as a duplicate (or a reinstatement) of that row. Four statements
        at most, plus one UPDATE when a lead is won again after its reversal."""
        if not items:
            return []
        firsts: dict[_Key, NewConversion] = {}
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
            returned = insert_ignoring_conflicts_returning(
                conn,
                conversions,
                [_values(firsts[k], tombstones.get(k), recorded_at) for k in keys],
            )
            stored: dict[_Key, ConversionRow] = {}
            if returned:
                # RETURNING cannot join, so the partner flag of new rows is looked up apart.
                codes = {r.referral_code for r in returned}
                registered = set(
                    conn.scalars(
                        sa.select(partners.c.referral_code).where(
                            partners.c.referral_code.in_(codes)
                        )
                    )
                )
                stored = {
                    (r.account_id, r.lead_id): _conversion(
                        r, partner_registered=r.referral_code in registered
                    )
                    for r in returned
                }
            fresh = set(stored)  # inserted leads whose first item is not answered yet
            if already := [k for k in keys if k not in fresh]:
                query = _conversion_query.where(_among(conn, conversions, already))
                stored.update(
                    ((r.account_id, r.lead_id), _conversion(r)) for r in conn.execute(query)
                )
            results: list[tuple[ConversionRow, Recorded]] = []
            reinstated: dict[_Key, ConversionRow] = {}
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
                    sa.update(conversions)
                    .where(conversions.c.id == sa.bindparam("row_id"))
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
    ) -> tuple[ConversionRow | None, Reversed]:
        """Mark the lead's conversion reversed if this reversal is newer than its
        win; with no conversion yet, remember the reversal for a late "won"."""
        at = reversed_at or now()
        key = (conversions.c.account_id == account_id) & (conversions.c.lead_id == lead_id)
        with self.engine.begin() as conn:
            changed = conn.execute(
                sa.update(conversions)
                .where(
                    key,
                    conversions.c.reversed_at.is_(None),
                    sa.or_(conversions.c.won_at.is_(None), conversions.c.won_at <= at),
                )
                .values(reversed_at=at, reversal_reason=reason)
                .returning(conversions.c.id)
            ).first()
            row = conn.execute(_conversion_query.where(key)).first()
            if changed is not None:
                return _conversion(row), Reversed.REVERSED
            if row is not None:
                outcome = Reversed.ALREADY_REVERSED if row.reversed_at else Reversed.STALE
                return _conversion(row), outcome
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
        """Credited and reversed conversions and amounts per code with its partner's
        terms, biggest credited amount first."""
        credited = conversions.c.reversed_at.is_(None)
        amount_total = sa.func.coalesce(
            sa.func.sum(sa.case((credited, conversions.c.amount), else_=0)), 0
        )
        query = (
            sa.select(
                conversions.c.referral_code,
                sa.func.count().filter(credited).label("conversions"),
                amount_total.label("amount_total"),
                sa.func.count().filter(~credited).label("reversed_conversions"),
                sa.func.coalesce(
                    sa.func.sum(sa.case((credited, 0), else_=conversions.c.amount)), 0
                ).label("reversed_amount"),
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
                    reversed_conversions=int(r.reversed_conversions),
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
