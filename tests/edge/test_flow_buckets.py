"""The flow chart's frozen buckets kept in the edge's database (webhook_flow_buckets):
computed from webhook_logs by the first process that asks, read by every later one."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from edge.__main__ import upgrade_database
from edge.event_lifecycle import ERROR, SUCCESS
from edge.flow_series import FROZEN_AFTER, Bucket, Buckets, FrozenBuckets, buckets_for
from edge.flow_store import FlowBucketStore, flow_buckets
from edge.log_store import NewLog, WebhookLogStore, webhook_logs
from edge.settings import Settings

MOMENT = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)


@pytest.fixture
def store(make_database) -> WebhookLogStore:  # type: ignore[no-untyped-def]
    url = make_database("flow_buckets")
    upgrade_database(Settings(edge_database_url=url))
    return WebhookLogStore(sa.create_engine(url))


def _logged(store: WebhookLogStore, received_at: datetime, status: str) -> None:
    [log_id] = store.insert([NewLog(source="amocrm", deal_data={})])
    with store.engine.begin() as conn:
        conn.execute(sa.update(webhook_logs).where(webhook_logs.c.id == log_id).values(
            received_at=received_at, processing_status=status, processing_ms=40))


def test_a_new_process_reads_the_frozen_buckets_and_computes_only_the_recent_ones(
    store: WebhookLogStore,
) -> None:
    window = buckets_for("7d", MOMENT)
    _logged(store, window.start + timedelta(hours=1), SUCCESS)
    _logged(store, window.start + timedelta(hours=2), ERROR)
    _logged(store, MOMENT - timedelta(minutes=5), SUCCESS)
    asked: list[Buckets] = []

    def compute(buckets: Buckets) -> list[Bucket]:
        asked.append(buckets)
        return store.flow_series(buckets)

    first = FrozenBuckets(FlowBucketStore(store.engine)).series(window, MOMENT, compute)
    assert asked == [window]
    # A second process (or this one restarted): the frozen buckets come from the table.
    asked.clear()
    second = FrozenBuckets(FlowBucketStore(store.engine)).series(window, MOMENT, compute)
    assert second == first
    assert first[0].counts[SUCCESS] == 1 and first[0].counts[ERROR] == 1
    assert first[0].p50_ms == pytest.approx(40)
    assert first[-1].counts[SUCCESS] == 1
    [recent] = asked
    assert recent.end == window.end
    assert recent.start >= MOMENT - FROZEN_AFTER - window.step
    # The 6-hour buckets stored: every one that ended FROZEN_AFTER before the moment.
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(flow_buckets).where(
            flow_buckets.c.step_s == 6 * 3600)).scalar_one()
    assert stored == window.count - len(recent.starts())


def test_buckets_that_left_every_window_are_dropped_from_the_table(
    store: WebhookLogStore,
) -> None:
    frozen = FrozenBuckets(FlowBucketStore(store.engine))
    frozen.series(buckets_for("24h", MOMENT), MOMENT, store.flow_series)
    two_days_on = MOMENT + timedelta(days=2)
    window = buckets_for("24h", two_days_on)
    frozen.series(window, two_days_on, store.flow_series)
    with store.engine.connect() as conn:
        oldest = conn.execute(sa.select(sa.func.min(flow_buckets.c.start_at))).scalar_one()
    assert oldest.replace(tzinfo=UTC) >= window.start
