"""The edge's routing queue on a real database: what it has no room for goes to
the worker at once."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from amoroute.timeutil import utc
from amoroute.v1 import deal_pb2
from edge.__main__ import upgrade_database
from edge.dispatch import Job
from edge.event_lifecycle import Outcome
from edge.log_store import NewLog, WebhookLogStore, webhook_logs
from edge.routing_queue import RoutingQueue
from edge.settings import Settings


class HeldRouter:
    """Stands in for the dispatcher: holds every batch until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.routed: list[int] = []

    def route(self, jobs: list[Job], timeout_s: float) -> list[Outcome]:
        self.release.wait(10)
        self.routed += [job.log_id for job in jobs]
        return []

    def record(self, outcomes: list[Outcome]) -> None:
        pass


@pytest.fixture
def store(make_database) -> WebhookLogStore:  # type: ignore[no-untyped-def]
    url = make_database("edge")
    upgrade_database(Settings(edge_database_url=url))
    return WebhookLogStore(sa.create_engine(url))


def test_events_the_queue_has_no_room_for_are_due_for_the_worker_at_once(
    store: WebhookLogStore,
) -> None:
    ids = store.insert([NewLog(source="amocrm", deal_data={}, lead_id=n) for n in range(1, 7)])
    router = HeldRouter()
    routing = RoutingQueue(
        router,  # type: ignore[arg-type]
        timeout_s=1.0,
        max_queued=2,
        on_overflow=store.make_due,
    )
    queued = routing.submit([Job(i, deal_pb2.Deal(lead_id=i)) for i in ids])
    # The routing thread may already hold the first batch.
    assert 2 <= queued <= 3
    with store.engine.connect() as conn:
        retry_at = dict(conn.execute(sa.select(webhook_logs.c.id, webhook_logs.c.retry_at)).all())
    soon = datetime.now(UTC) + timedelta(seconds=5)
    due_now = [i for i in ids if utc(retry_at[i]) < soon]
    assert due_now == ids[queued:]
    router.release.set()
    routing.close()
    assert sorted(router.routed) == ids[:queued]


class CountingRouter(HeldRouter):
    """Holds the first batch until released; notes the size of every batch."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def route(self, jobs: list[Job], timeout_s: float) -> list[Outcome]:
        self.sizes.append(len(jobs))
        return super().route(jobs, timeout_s)


def lingering(router: CountingRouter) -> RoutingQueue:
    """A queue whose busy batches wait up to 5 s for 20 events."""
    return RoutingQueue(router, timeout_s=1.0, linger_s=5.0, gather=20)  # type: ignore[arg-type]


def test_a_busy_queue_lingers_so_events_arriving_meanwhile_share_one_batch() -> None:
    router = CountingRouter()
    routing = lingering(router)
    routing.submit([Job(1, deal_pb2.Deal(lead_id=1))])
    while not router.sizes:  # the first batch is in flight
        threading.Event().wait(0.001)
    routing.submit([Job(i, deal_pb2.Deal(lead_id=i)) for i in range(2, 12)])
    router.release.set()
    for i in range(12, 22):  # trickling in while the next batch lingers
        threading.Event().wait(0.005)
        routing.submit([Job(i, deal_pb2.Deal(lead_id=i))])
    for _ in range(1000):
        if len(router.sizes) == 2:
            break
        threading.Event().wait(0.005)
    routing.close()
    assert router.sizes == [1, 20]
    assert sorted(router.routed) == list(range(1, 22))


def test_an_idle_queue_routes_an_event_at_once() -> None:
    router = CountingRouter()
    router.release.set()
    routing = lingering(router)
    routing.submit([Job(1, deal_pb2.Deal(lead_id=1))])
    for _ in range(200):
        if router.routed:
            break
        threading.Event().wait(0.005)
    assert router.routed == [1]
    routing.close()
