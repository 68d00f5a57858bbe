"""webhook_flow_buckets: the flow chart's buckets past their events' retries, computed
once by whichever edge process asks first and read by every other and after restarts
(edge.flow_series.FrozenBuckets)."""

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from amoroute.db import is_postgres
from amoroute.timeutil import utc
from edge.event_lifecycle import STATUSES
from edge.flow_series import Bucket
from edge.log_store import metadata

flow_buckets = sa.Table(
    "webhook_flow_buckets",
    metadata,
    # The bucket's width in seconds (one per window of the chart) and its start.
    sa.Column("step_s", sa.Integer, primary_key=True),
    sa.Column("start_at", sa.DateTime(timezone=True), primary_key=True),
    # Events by processing status: {"success": 12, "error": 1, ...}.
    sa.Column("counts", sa.JSON, nullable=False),
    sa.Column("p50_ms", sa.Float),
    sa.Column("p95_ms", sa.Float),
)


class FlowBucketStore:
    """The shelf of FrozenBuckets in the edge's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self, step: timedelta, starts: list[datetime]) -> dict[datetime, Bucket]:
        if not starts:
            return {}
        c = flow_buckets.c
        query = sa.select(c.start_at, c.counts, c.p50_ms, c.p95_ms).where(
            c.step_s == _seconds(step), c.start_at >= starts[0], c.start_at <= starts[-1]
        )
        with self.engine.connect() as conn:
            return {
                utc(start): Bucket(
                    counts={status: int(counts.get(status, 0)) for status in STATUSES},
                    p50_ms=p50,
                    p95_ms=p95,
                )
                for start, counts, p50, p95 in conn.execute(query)
            }

    def save(self, step: timedelta, buckets: list[tuple[datetime, Bucket]]) -> None:
        if not buckets:
            return
        insert = (postgresql if is_postgres(self.engine) else sqlite).insert(flow_buckets)
        rows = [
            {
                "step_s": _seconds(step),
                "start_at": start,
                "counts": bucket.counts,
                "p50_ms": bucket.p50_ms,
                "p95_ms": bucket.p95_ms,
            }
            for start, bucket in buckets
        ]
        with self.engine.begin() as conn:
            conn.execute(insert.on_conflict_do_nothing(), rows)

    def forget_before(self, step: timedelta, start: datetime) -> None:
        c = flow_buckets.c
        with self.engine.begin() as conn:
            conn.execute(
                sa.delete(flow_buckets).where(c.step_s == _seconds(step), c.start_at < start)
            )


def _seconds(step: timedelta) -> int:
    return int(step.total_seconds())
