"""How the edge splits events into BatchRouteDeals calls."""

from amoroute.v1 import deal_pb2
from edge.dispatch import MAX_BYTES_PER_CALL, MAX_DEALS_PER_CALL, Job, route_batches


def _job(log_id: int, name: str = "") -> Job:
    return Job(log_id, deal_pb2.Deal(lead_id=log_id, name=name))


def test_many_small_deals_go_in_batches_of_the_router_limit_in_order() -> None:
    jobs = [_job(i) for i in range(1, 1201)]
    batches = list(route_batches(jobs))
    assert [len(b) for b in batches] == [MAX_DEALS_PER_CALL, MAX_DEALS_PER_CALL, 200]
    assert [j.log_id for b in batches for j in b] == list(range(1, 1201))


def test_big_deals_are_split_to_stay_under_the_message_limit() -> None:
    big = "x" * (MAX_BYTES_PER_CALL // 3)
    batches = list(route_batches([_job(i, big) for i in range(1, 6)]))
    assert [len(b) for b in batches] == [2, 2, 1]
    assert all(sum(j.deal.ByteSize() for j in b) <= MAX_BYTES_PER_CALL for b in batches)


def test_no_jobs_no_batches() -> None:
    assert list(route_batches([])) == []
