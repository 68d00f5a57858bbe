"""The review queue's SQL: unknown sales grouped by their raw UTM marks, and the groups an
admin marked "not attributable" (review_dismissals)."""

import hashlib
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from amoroute.db import is_postgres
from amoroute.timeutil import now, utc
from edge import amocrm_values
from edge.amocrm_values import BadValue
from edge.log_store import metadata, webhook_logs

# Decisions of an event the router routed; `ignored` events (not a won deal) do not count.
ROUTED = ("referral", "traffic", "both", "unknown")
# Lead ids shown per group.
LEADS_PER_GROUP = 5
# Whole amounts the database adds up itself; anything else (150 000, 150000.50, a JSON number
# read back as 1.5e5) is read by amocrm_values.amount(), as the webhook's price is.
_PLAIN_AMOUNT = "^[0-9]{1,15}$"

review_dismissals = sa.Table(
    "review_dismissals",
    metadata,
    sa.Column("key_sha256", sa.String(64), primary_key=True),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("dismissed_by", sa.String(100), nullable=False),
    sa.Column("dismissed_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass
class RawGroup:
    """Unknown sales with the same raw (utm_source, utm_campaign); None: no such mark."""

    utm_source: str | None
    utm_campaign: str | None
    count: int
    revenue: int
    first_seen: datetime
    last_seen: datetime
    # (log id, lead id) of the newest sales, newest first.
    newest: list[tuple[int, int]]


@dataclass(frozen=True)
class Dismissal:
    key: str
    reason: str
    dismissed_by: str
    dismissed_at: datetime


class ReviewStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def unknown_sales(
        self, received_from: datetime | None, received_to: datetime | None
    ) -> list[RawGroup]:
        """Leads whose newest routed event is `unknown` (a lead credited since, after a rules
        change or a replay, is not one), that event received in [received_from,
        received_to), grouped by the event's raw UTM marks."""
        w = webhook_logs.alias("w")
        newer = webhook_logs.alias("newer")
        conditions = [
            w.c.routing_decision == "unknown",
            w.c.lead_id.is_not(None),
            ~sa.exists().where(
                newer.c.lead_id == w.c.lead_id,
                newer.c.id > w.c.id,
                newer.c.routing_decision.in_(ROUTED),
            ),
        ]
        if received_from is not None:
            conditions.append(w.c.received_at >= received_from)
        if received_to is not None:
            conditions.append(w.c.received_at < received_to)
        # The price as AmoCRM sent it: of the lead read from the API when there is one
        # (the router routed that), else of the webhook's lead.
        price = sa.cast(
            sa.func.coalesce(
                w.c.deal_data[("api_lead", "price")].as_string(),
                w.c.deal_data[("lead", "price")].as_string(),
            ),
            sa.Text,
        )
        plain = price.regexp_match(_PLAIN_AMOUNT)
        marks = (w.c.utm_source, w.c.utm_campaign)
        # One pass: each sale with its group's figures (a window over the whole group) and its
        # rank in the group, newest first; the first LEADS_PER_GROUP of each group are kept.
        # PERF: one scan and anti-join for the figures and the newest leads together, not
        # one for each; measured by python -m bench.review_queue
        sales = (
            sa.select(
                *marks,
                w.c.id,
                w.c.lead_id,
                sa.func.row_number().over(partition_by=marks, order_by=w.c.id.desc()).label("rank"),
                sa.func.count().over(partition_by=marks).label("sales"),
                sa.func.sum(sa.case((plain, sa.cast(price, sa.BigInteger)), else_=0))
                .over(partition_by=marks)
                .label("plain_revenue"),
                sa.func.sum(sa.case((sa.and_(price.is_not(None), ~plain), 1), else_=0))
                .over(partition_by=marks)
                .label("other_prices"),
                sa.func.min(w.c.received_at).over(partition_by=marks).label("first_seen"),
                sa.func.max(w.c.received_at).over(partition_by=marks).label("last_seen"),
            )
            .where(*conditions)
            .subquery()
        )
        newest = sa.select(sales).where(sales.c.rank <= LEADS_PER_GROUP).order_by(sales.c.id.desc())
        groups: dict[tuple[str | None, str | None], RawGroup] = {}
        odd = False
        with self.engine.connect() as conn:
            for r in conn.execute(newest):
                key = (r.utm_source, r.utm_campaign)
                if key not in groups:
                    groups[key] = RawGroup(
                        r.utm_source,
                        r.utm_campaign,
                        int(r.sales),
                        int(r.plain_revenue or 0),
                        utc(r.first_seen),
                        utc(r.last_seen),
                        [],
                    )
                    odd = odd or bool(r.other_prices)
                groups[key].newest.append((r.id, r.lead_id))
            if odd:
                prices = sa.select(*marks, price.label("price")).where(
                    *conditions, price.is_not(None), ~plain
                )
                for r in conn.execute(prices):
                    groups[(r.utm_source, r.utm_campaign)].revenue += _amount(r.price)
        return list(groups.values())

    def dismissals(self) -> dict[str, Dismissal]:
        """Every dismissed group, by its key."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(review_dismissals))
            return {
                r.key: Dismissal(r.key, r.reason, r.dismissed_by, utc(r.dismissed_at)) for r in rows
            }

    def dismiss(self, key: str, reason: str, by: str) -> Dismissal:
        """Mark a group not attributable (again: the newer reason and author replace the
        older)."""
        dismissal = Dismissal(key, reason, by, now())
        values = {
            "key": key,
            "reason": reason,
            "dismissed_by": by,
            "dismissed_at": dismissal.dismissed_at,
        }
        insert = postgresql.insert if is_postgres(self.engine) else sqlite.insert
        upsert = (
            insert(review_dismissals)
            .values(key_sha256=_digest(key), **values)
            .on_conflict_do_update(index_elements=[review_dismissals.c.key_sha256], set_=values)
        )
        with self.engine.begin() as conn:
            conn.execute(upsert)
        return dismissal

    def undismiss(self, key: str) -> bool:
        """Put a dismissed group back in the queue; False when it was not dismissed."""
        with self.engine.begin() as conn:
            deleted = conn.execute(
                sa.delete(review_dismissals).where(review_dismissals.c.key_sha256 == _digest(key))
            ).rowcount
        return bool(deleted)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _amount(text: str) -> int:
    try:
        return amocrm_values.amount(text)
    except BadValue:
        # The router refuses a deal whose price it cannot read, so such a sale is not
        # routed `unknown`; should one be, it adds nothing to the revenue.
        return 0
