"""Zero-loss accounting: what each phase's leads became, read straight from the
databases of the edge (webhook_logs), traffic_svc (all_sales_tracking) and
notifier_svc (notifications, the outbox).

A lead is *credited* when its sale is recorded (not reversed) and its notification
is stored. The bench reads the tables directly because it is the auditor: the
counts must not depend on the services it is checking."""

import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from bench.leads import LeadBlock
from edge.log_store import webhook_logs
from notifier_svc.store import notifications
from traffic_svc.store import sales

# A single sale's message names its lead once; a digest links each of its sales.
_LEAD_IN_MESSAGE = re.compile(r"ID сделки:</b> (\d+)|/leads/detail/(\d+)\">сделка")
_CHUNK = 20_000


@dataclass(frozen=True)
class PhaseLedger:
    """Every figure of one phase's leads; `sent` are the unique leads posted."""

    sent: int
    acked: int  # leads named in 200 answers
    resent: int  # leads without a 200 answer when the load stopped, posted again
    logged_rows: int  # webhook_logs rows (a resent lead may have two)
    logged_leads: int
    acked_not_logged: int  # a 200 answer naming a log id that is not in webhook_logs
    sales: int  # sales rows, not reversed
    notifications: int  # outbox rows
    notification_statuses: dict[str, int]
    credited: int  # leads with a sale and a notification
    duplicated: int  # sales, outbox rows or Telegram messages beyond one per lead
    duplicated_detail: dict[str, int]
    lost: int  # acknowledged or sent leads that were not credited
    unexpected: int  # credited leads that were never sent
    log_statuses: dict[str, int]
    worker_retried: int  # logs the worker had to route again (attempts > 1)
    last_credit_at: float | None  # epoch seconds of the latest sale or notification

    @property
    def zero_loss(self) -> bool:
        return (
            self.credited == self.sent
            and self.duplicated == 0
            and self.lost == 0
            and self.unexpected == 0
            and self.acked_not_logged == 0
        )


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _repeats(ids: list[int]) -> int:
    return len(ids) - len(set(ids))


class Ledger:
    def __init__(self, edge_url: str, traffic_url: str, notifier_url: str) -> None:
        self.edge = sa.create_engine(edge_url)
        self.traffic = sa.create_engine(traffic_url)
        self.notifier = sa.create_engine(notifier_url)

    def close(self) -> None:
        for engine in (self.edge, self.traffic, self.notifier):
            engine.dispose()

    def leads_of_logs(self, log_ids: list[int]) -> dict[int, int | None]:
        """webhook_logs id -> its lead id, for the ids that exist."""
        c = webhook_logs.c
        found: dict[int, int | None] = {}
        with self.edge.connect() as conn:
            for start in range(0, len(log_ids), _CHUNK):
                chunk = log_ids[start : start + _CHUNK]
                rows = conn.execute(sa.select(c.id, c.lead_id).where(c.id.in_(chunk)))
                found.update({row.id: row.lead_id for row in rows})
        return found

    def wait_credited(
        self, block: LeadBlock, expected: int, timeout_s: float, poll_s: float = 0.5
    ) -> bool:
        """Wait until at least `expected` of the block's leads have their sale and
        their notification; False after `timeout_s`. (Each poll is a transaction
        in the traffic and notifier databases, which pgstats counts.)"""
        deadline = time.monotonic() + timeout_s
        while min(self.credited_so_far(block)) < expected:
            if time.monotonic() > deadline:
                return False
            time.sleep(poll_s)
        return True

    def credited_so_far(self, block: LeadBlock) -> tuple[int, int]:
        """(sales, notifications) of the block's leads now: cheap, for polling."""
        with self.traffic.connect() as conn:
            n_sales = conn.execute(
                sa.select(sa.func.count()).where(
                    sales.c.lead_id.between(block.first, block.last), sales.c.reversed_at.is_(None)
                )
            ).scalar_one()
        with self.notifier.connect() as conn:
            n_notes = conn.execute(
                sa.select(sa.func.count()).where(
                    notifications.c.lead_id.between(block.first, block.last)
                )
            ).scalar_one()
        return n_sales, n_notes

    def phase(
        self,
        block: LeadBlock,
        sent: set[int],
        acked: set[int],
        resent: int,
        acked_not_logged: int,
        telegram_leads: list[int],
    ) -> PhaseLedger:
        """Count what became of the block's leads."""
        c = webhook_logs.c
        in_block = c.lead_id.between(block.first, block.last)
        with self.edge.connect() as conn:
            logged = list(conn.execute(sa.select(c.lead_id).where(in_block)).scalars())
            log_statuses = {
                status: n
                for status, n in conn.execute(
                    sa.select(c.processing_status, sa.func.count())
                    .where(in_block)
                    .group_by(c.processing_status)
                )
            }
            retried = conn.execute(
                sa.select(sa.func.count()).where(in_block, c.attempts > 1)
            ).scalar_one()
        with self.traffic.connect() as conn:
            sale_rows = conn.execute(
                sa.select(sales.c.lead_id, sales.c.recorded_at).where(
                    sales.c.lead_id.between(block.first, block.last),
                    sales.c.reversed_at.is_(None),
                )
            ).all()
        n = notifications.c
        with self.notifier.connect() as conn:
            note_rows = conn.execute(
                sa.select(n.lead_id, n.created_at, n.status).where(
                    n.lead_id.between(block.first, block.last)
                )
            ).all()
        sale_leads = [r.lead_id for r in sale_rows]
        note_leads = [r.lead_id for r in note_rows]
        credited = set(sale_leads) & set(note_leads)
        told = [lead for lead in telegram_leads if lead in block]
        duplicated = {
            "sales": _repeats(sale_leads),
            "notifications": _repeats(note_leads),
            "telegram_messages": _repeats(told),
        }
        moments = [r.recorded_at for r in sale_rows] + [r.created_at for r in note_rows]
        return PhaseLedger(
            sent=len(sent),
            acked=len(acked),
            resent=resent,
            logged_rows=len(logged),
            logged_leads=len(set(logged)),
            acked_not_logged=acked_not_logged,
            sales=len(sale_leads),
            notifications=len(note_leads),
            notification_statuses=dict(Counter(str(r.status) for r in note_rows)),
            credited=len(credited),
            duplicated=sum(duplicated.values()),
            duplicated_detail=duplicated,
            lost=len((sent | acked) - credited),
            unexpected=len(credited - sent),
            log_statuses=log_statuses,
            worker_retried=retried,
            last_credit_at=_epoch(max(moments)) if moments else None,
        )


def telegram_leads(texts: list[str]) -> list[int]:
    """Lead ids announced by the Telegram messages delivered (with repeats)."""
    return [
        int(single or in_digest)
        for text in texts
        for single, in_digest in _LEAD_IN_MESSAGE.findall(text)
    ]
