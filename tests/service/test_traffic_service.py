"""TrafficService on an ephemeral port against a real database."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from amoroute.channels import channel
from amoroute.v1 import deal_pb2, traffic_pb2, traffic_pb2_grpc
from traffic_svc import server
from traffic_svc.settings import Settings


@pytest.fixture(scope="module")
def stub(make_database) -> Iterator[traffic_pb2_grpc.TrafficServiceStub]:  # type: ignore[no-untyped-def]
    settings = Settings(traffic_database_url=make_database("traffic"))
    server.upgrade_database(settings)
    running = server.build(settings, port=0)
    with channel(f"localhost:{running.port}") as ch:
        yield traffic_pb2_grpc.TrafficServiceStub(ch)
    running.stop(0)


def _sale(
    lead_id: int, targetologist: str = "Kenesary", amount: int = 150000, won_at: int = 1750694400
) -> traffic_pb2.Sale:
    return traffic_pb2.Sale(
        lead_id=lead_id,
        account_id=32145678,
        targetologist=targetologist,
        utm=deal_pb2.UtmMarks(source="kenesary_fb", campaign="tp_june"),
        amount=amount,
        deal_name="Курс «Таргетолог PRO»",
        won_at=Timestamp(seconds=won_at),
    )


def test_recording_a_sale_twice_stores_it_once_and_says_duplicate(stub) -> None:  # type: ignore[no-untyped-def]
    first = stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=_sale(1001)))
    again = stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=_sale(1001, amount=1)))
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.sale.amount == 150000  # the first record stands
    listed = stub.ListSales(traffic_pb2.ListSalesRequest(lead_id=1001))
    assert [s.lead_id for s in listed.sales] == [1001]
    assert listed.sales[0].utm.source == "kenesary_fb"
    assert listed.sales[0].deal_name == "Курс «Таргетолог PRO»"
    assert listed.sales[0].won_at.seconds == 1750694400


def test_list_sales_pages_without_gaps_or_repeats(stub) -> None:  # type: ignore[no-untyped-def]
    for lead in range(2001, 2008):
        stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=_sale(lead, targetologist="Pager")))
    seen, token = [], ""
    while True:
        page = stub.ListSales(
            traffic_pb2.ListSalesRequest(page_size=3, page_token=token, targetologist="pager")
        )
        seen += [s.lead_id for s in page.sales]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(range(2007, 2000, -1))


def test_stats_count_and_sum_per_targetologist_within_the_range(stub) -> None:  # type: ignore[no-untyped-def]
    stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=_sale(3001, "Stats", 100, 1_000_000)))
    stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=_sale(3002, "Stats", 250, 1_000_100)))
    stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=_sale(3003, "Stats", 999, 2_000_000)))
    reply = stub.GetTargetologistStats(
        traffic_pb2.GetTargetologistStatsRequest(
            targetologist="Stats",
            won_from=Timestamp(seconds=1_000_000),
            won_to=Timestamp(seconds=1_500_000),
        )
    )
    assert [(s.targetologist, s.sales, s.revenue) for s in reply.stats] == [("Stats", 2, 350)]


def test_list_sales_within_a_won_range_and_a_backwards_range_names_won_to(stub) -> None:  # type: ignore[no-untyped-def]
    for lead, won_at in [(3101, 5_000_000), (3102, 5_000_100), (3103, 6_000_000)]:
        stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=_sale(lead, "Ranged", 10, won_at)))
    within = stub.ListSales(traffic_pb2.ListSalesRequest(
        targetologist="Ranged", won_from=Timestamp(seconds=5_000_000),
        won_to=Timestamp(seconds=6_000_000),
    ))
    assert [s.lead_id for s in within.sales] == [3102, 3101]
    with pytest.raises(grpc.RpcError) as refused:
        stub.ListSales(traffic_pb2.ListSalesRequest(
            won_from=Timestamp(seconds=6_000_000), won_to=Timestamp(seconds=5_000_000)
        ))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith("won_to")


@pytest.mark.parametrize(
    ("sale", "field"),
    [
        (traffic_pb2.Sale(targetologist="K"), "sale.lead_id"),
        (traffic_pb2.Sale(lead_id=-5, targetologist="K"), "sale.lead_id"),
        (traffic_pb2.Sale(lead_id=5), "sale.targetologist"),
        (traffic_pb2.Sale(lead_id=5, targetologist="K", amount=-1), "sale.amount"),
        (traffic_pb2.Sale(lead_id=5, targetologist="K", amount=10**15 + 1), "sale.amount"),
        (
            traffic_pb2.Sale(lead_id=5, targetologist="K", utm=deal_pb2.UtmMarks(term="a\x00")),
            "sale.utm.term: must not contain NUL",
        ),
        (
            traffic_pb2.Sale(
                lead_id=5, targetologist="K", utm=deal_pb2.UtmMarks(source="s" * 10_001)
            ),
            "sale.utm.source: is longer than",
        ),
    ],
)
def test_bad_sale_is_rejected_with_invalid_argument_naming_the_field(stub, sale, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=sale))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in err.value.details()


def test_foreign_page_token_is_invalid_argument(stub) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        stub.ListSales(traffic_pb2.ListSalesRequest(page_token="garbage!"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in err.value.details()


def _reverse(stub, lead_id: int, at: int):  # type: ignore[no-untyped-def]
    return stub.ReverseSale(
        traffic_pb2.ReverseSaleRequest(
            lead_id=lead_id,
            account_id=32145678,
            reversed_at=Timestamp(seconds=at),
            reason="status 142 -> 143",
        )
    )


def test_sale_that_leaves_won_is_kept_marked_reversed_and_shown_in_stats(stub) -> None:  # type: ignore[no-untyped-def]
    stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=_sale(4001, "Reverser", 700, 5_000_000)))
    stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=_sale(4002, "Reverser", 300, 5_000_000)))
    reply = _reverse(stub, 4001, 5_000_100)
    assert reply.outcome == deal_pb2.REVERSAL_OUTCOME_REVERSED
    assert reply.sale.reversed_at.seconds == 5_000_100
    assert _reverse(stub, 4001, 5_000_200).outcome == deal_pb2.REVERSAL_OUTCOME_ALREADY_REVERSED
    [stats] = stub.GetTargetologistStats(
        traffic_pb2.GetTargetologistStatsRequest(targetologist="Reverser")
    ).stats
    assert (stats.sales, stats.revenue, stats.reversed_sales, stats.reversed_revenue) == (
        1,
        300,
        1,
        700,
    )
    [kept] = stub.ListSales(traffic_pb2.ListSalesRequest(lead_id=4001)).sales
    assert kept.reversal_reason == "status 142 -> 143"


def test_older_won_arriving_after_newer_reversal_credits_nothing(stub) -> None:  # type: ignore[no-untyped-def]
    assert _reverse(stub, 4101, 6_000_100).outcome == deal_pb2.REVERSAL_OUTCOME_NOT_CREDITED
    late = stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=_sale(4101, "Late", 900, 6_000_000)))
    assert late.superseded and not late.duplicate
    assert late.sale.reversed_at.seconds == 6_000_100
    [stats] = stub.GetTargetologistStats(
        traffic_pb2.GetTargetologistStatsRequest(targetologist="Late")
    ).stats
    assert (stats.sales, stats.revenue) == (0, 0)


def test_stale_reversal_older_than_the_win_is_ignored_and_a_new_win_reinstates(stub) -> None:  # type: ignore[no-untyped-def]
    stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=_sale(4201, "Again", 100, 7_000_000)))
    assert _reverse(stub, 4201, 6_999_000).outcome == deal_pb2.REVERSAL_OUTCOME_STALE
    assert _reverse(stub, 4201, 7_000_100).outcome == deal_pb2.REVERSAL_OUTCOME_REVERSED
    won_again = stub.RecordSale(
        traffic_pb2.RecordSaleRequest(sale=_sale(4201, "Again", 100, 7_000_200))
    )
    assert not won_again.duplicate and not won_again.sale.HasField("reversed_at")
    replayed_old = stub.RecordSale(
        traffic_pb2.RecordSaleRequest(sale=_sale(4201, "Again", 100, 7_000_000))
    )
    assert replayed_old.duplicate


def _batch(stub, *sales: traffic_pb2.Sale, view: int = 0) -> list[traffic_pb2.RecordSaleResponse]:  # type: ignore[no-untyped-def]
    request = traffic_pb2.BatchRecordSalesRequest(
        requests=[traffic_pb2.RecordSaleRequest(sale=s) for s in sales], view=view
    )
    return list(stub.BatchRecordSales(request).responses)


def _listed(stub, lead_id: int) -> list[traffic_pb2.Sale]:  # type: ignore[no-untyped-def]
    return list(stub.ListSales(traffic_pb2.ListSalesRequest(lead_id=lead_id)).sales)


def test_batch_records_sales_as_the_single_rpc_would_in_request_order(stub) -> None:  # type: ignore[no-untyped-def]
    stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=_sale(8002, "Batch", 200, 9_000_000)))
    _reverse(stub, 8003, 9_000_100)  # a newer reversal is known before the win
    stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=_sale(8004, "Batch", 400, 9_000_000)))
    _reverse(stub, 8004, 9_000_100)
    replies = _batch(
        stub,
        _sale(8001, "Batch", 100, 9_000_000),  # new
        _sale(8002, "Batch", 1, 9_000_000),  # recorded before
        _sale(8003, "Batch", 300, 9_000_000),  # older than its reversal
        _sale(8004, "Batch", 400, 9_000_200),  # won again after its reversal
        _sale(8005, "Batch", 500, 9_000_000),  # new
    )
    assert [(r.sale.lead_id, r.duplicate, r.superseded) for r in replies] == [
        (8001, False, False),
        (8002, True, False),
        (8003, False, True),
        (8004, False, False),
        (8005, False, False),
    ]
    assert replies[1].sale.amount == 200  # the first record stands
    assert replies[2].sale.reversed_at.seconds == 9_000_100
    assert (
        not replies[3].sale.HasField("reversed_at") and replies[3].sale.won_at.seconds == 9_000_200
    )
    [reinstated] = _listed(stub, 8004)
    assert not reinstated.HasField("reversed_at") and reinstated.reversal_reason == ""
    [stats] = stub.GetTargetologistStats(
        traffic_pb2.GetTargetologistStatsRequest(targetologist="Batch")
    ).stats
    assert (stats.sales, stats.revenue, stats.reversed_sales) == (4, 1200, 1)


def test_batch_in_outcome_view_answers_what_happened_without_the_sales(stub) -> None:  # type: ignore[no-untyped-def]
    _batch(stub, _sale(8602, "Outcome", 200, 9_600_000))
    _reverse(stub, 8603, 9_600_100)
    replies = _batch(
        stub,
        _sale(8601, "Outcome", 100, 9_600_000),
        _sale(8602, "Outcome", 200, 9_600_000),
        _sale(8603, "Outcome", 300, 9_600_000),
        view=deal_pb2.WRITE_VIEW_OUTCOME,
    )
    assert [(r.HasField("sale"), r.duplicate, r.superseded) for r in replies] == [
        (False, False, False),
        (False, True, False),
        (False, False, True),
    ]
    [stored] = _listed(stub, 8601)
    assert (stored.targetologist, stored.amount) == ("Outcome", 100)
    [full] = _batch(stub, _sale(8601, "Outcome", 100, 9_600_000), view=deal_pb2.WRITE_VIEW_FULL)
    assert full.duplicate and full.sale == stored


def test_batch_answers_a_lead_given_twice_against_the_row_its_first_item_stored(stub) -> None:  # type: ignore[no-untyped-def]
    _reverse(stub, 8102, 9_100_100)
    replies = _batch(
        stub,
        _sale(8101, "Twice", 100, 9_100_000),
        _sale(8102, "Twice", 200, 9_100_000),  # superseded by the known reversal...
        _sale(8101, "Twice", 1, 9_100_000),  # ...duplicate of the row inserted just above
        _sale(8102, "Twice", 200, 9_100_200),  # ...won again after that reversal
        _sale(8102, "Twice", 200, 9_100_300),  # duplicate of the reinstated row
    )
    assert [(r.sale.lead_id, r.duplicate, r.superseded) for r in replies] == [
        (8101, False, False),
        (8102, False, True),
        (8101, True, False),
        (8102, False, False),
        (8102, True, False),
    ]
    assert replies[2].sale.amount == 100
    assert replies[4].sale.won_at.seconds == 9_100_200
    assert [s.lead_id for s in _listed(stub, 8101)] == [8101]
    [stored] = _listed(stub, 8102)
    assert not stored.HasField("reversed_at") and stored.won_at.seconds == 9_100_200


def test_batch_with_a_bad_sale_is_rejected_naming_it_and_records_nothing(stub) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        _batch(stub, _sale(8201), _sale(8202, targetologist=" "), _sale(8203))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("requests[1].sale.targetologist: ")
    assert _listed(stub, 8201) == [] and _listed(stub, 8203) == []


def test_batch_of_500_is_recorded_and_one_of_501_is_rejected_naming_requests(stub) -> None:  # type: ignore[no-untyped-def]
    sales = [_sale(lead, "Bulk", 1) for lead in range(10_000, 10_501)]
    with pytest.raises(grpc.RpcError) as err:
        _batch(stub, *sales)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("requests: ")
    assert _listed(stub, 10_000) == []
    replies = _batch(stub, *sales[:500])
    assert [r.sale.lead_id for r in replies] == list(range(10_000, 10_500))
    assert not any(r.duplicate or r.superseded for r in replies)


def test_empty_batch_answers_no_responses(stub) -> None:  # type: ignore[no-untyped-def]
    assert _batch(stub) == []


# Re-attribution: the routing rules changed, and a lead's sale moves to another
# targetologist (RecordSale with reattribute) or to nobody (WithdrawSale).


def _reattribute(stub, sale: traffic_pb2.Sale) -> traffic_pb2.RecordSaleResponse:  # type: ignore[no-untyped-def]
    return stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=sale, reattribute=True))


def _withdraw(stub, lead_id: int, reason: str = "no pattern matched"):  # type: ignore[no-untyped-def]
    return stub.WithdrawSale(
        traffic_pb2.WithdrawSaleRequest(lead_id=lead_id, account_id=32145678, reason=reason)
    )


def _figures(stub, targetologist: str) -> tuple[int, int, int, int]:  # type: ignore[no-untyped-def]
    """(sales, revenue, reversed_sales, reversed_revenue) of one targetologist."""
    stats = stub.GetTargetologistStats(
        traffic_pb2.GetTargetologistStatsRequest(targetologist=targetologist)
    ).stats
    return next(
        ((s.sales, s.revenue, s.reversed_sales, s.reversed_revenue) for s in stats), (0, 0, 0, 0)
    )


def test_reattributed_sale_keeps_the_old_one_reversed_and_moves_the_revenue(stub) -> None:  # type: ignore[no-untyped-def]
    stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=_sale(11_001, "KenesaryRA", 700)))
    stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=_sale(11_002, "KenesaryRA", 300)))
    assert _figures(stub, "KenesaryRA") == (2, 1000, 0, 0)

    moved = _reattribute(stub, _sale(11_001, "AidanaRA", 700))
    assert moved.reattributed and not moved.duplicate
    assert moved.previous_targetologist == "KenesaryRA"
    assert moved.sale.targetologist == "AidanaRA" and not moved.sale.HasField("reversed_at")
    new, old = _listed(stub, 11_001)  # newest first: both kept, visible
    assert (new.targetologist, new.HasField("reattributed_at")) == ("AidanaRA", False)
    assert old.targetologist == "KenesaryRA" and old.HasField("reattributed_at")
    assert old.reversal_reason == "re-attributed"
    assert old.reversed_at == old.reattributed_at
    assert _figures(stub, "KenesaryRA") == (1, 300, 1, 700)
    assert _figures(stub, "AidanaRA") == (1, 700, 0, 0)

    # A second apply of the same change finds nothing to do.
    again = _reattribute(stub, _sale(11_001, "AidanaRA", 700))
    assert again.duplicate and not again.reattributed and again.previous_targetologist == ""
    # A normal won event later is a duplicate of the new live sale.
    replayed = stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=_sale(11_001, "KenesaryRA")))
    assert replayed.duplicate and replayed.sale.targetologist == "AidanaRA"
    assert len(_listed(stub, 11_001)) == 2
    assert _figures(stub, "AidanaRA") == (1, 700, 0, 0)


def test_reattributing_a_reversed_sale_moves_it_still_reversed(stub) -> None:  # type: ignore[no-untyped-def]
    stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=_sale(11_101, "KenesaryRR", 500, 5_000)))
    _reverse(stub, 11_101, 5_100)
    moved = _reattribute(stub, _sale(11_101, "AidanaRR", 500, 5_000))
    assert moved.reattributed
    assert moved.sale.reversed_at.seconds == 5_100
    assert moved.sale.reversal_reason == "status 142 -> 143"
    old = _listed(stub, 11_101)[1]
    assert old.reversal_reason == "status 142 -> 143" and old.HasField("reattributed_at")
    assert _figures(stub, "AidanaRR") == (0, 0, 1, 500)
    assert _figures(stub, "KenesaryRR") == (0, 0, 1, 500)


def test_withdrawn_sale_is_reversed_once_and_credited_again_when_rules_change_back(stub) -> None:  # type: ignore[no-untyped-def]
    stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=_sale(11_201, "KenesaryWD", 400)))
    withdrawn = _withdraw(stub, 11_201, "utm_source 'promo' matched nobody")
    assert withdrawn.outcome == deal_pb2.REVERSAL_OUTCOME_REVERSED
    assert withdrawn.sale.reversal_reason == "re-attributed: utm_source 'promo' matched nobody"
    assert not withdrawn.sale.HasField("reattributed_at")  # still the lead's sale
    assert _figures(stub, "KenesaryWD") == (0, 0, 1, 400)
    assert _withdraw(stub, 11_201).outcome == deal_pb2.REVERSAL_OUTCOME_ALREADY_REVERSED
    # A normal won event changes nothing: the withdrawal stands.
    replayed = stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=_sale(11_201, "KenesaryWD")))
    assert replayed.duplicate and replayed.sale.HasField("reversed_at")
    back = _reattribute(stub, _sale(11_201, "KenesaryWD", 400))
    assert not (back.duplicate or back.reattributed) and not back.sale.HasField("reversed_at")
    assert _figures(stub, "KenesaryWD") == (1, 400, 0, 0)


def test_a_withdrawn_sale_whose_deal_is_lost_stays_reversed_when_rules_change_back(stub) -> None:  # type: ignore[no-untyped-def]
    stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=_sale(11_251, "KenesaryWL", 400, 8_000)))
    _withdraw(stub, 11_251)
    lost = _reverse(stub, 11_251, 8_100)
    assert lost.outcome == deal_pb2.REVERSAL_OUTCOME_REVERSED
    assert lost.sale.reversal_reason == "status 142 -> 143"
    back = _reattribute(stub, _sale(11_251, "KenesaryWL", 400, 8_000))
    assert back.duplicate and back.sale.reversed_at.seconds == 8_100
    assert _figures(stub, "KenesaryWL") == (0, 0, 1, 400)


def test_withdrawing_an_uncredited_lead_remembers_nothing(stub) -> None:  # type: ignore[no-untyped-def]
    nothing = _withdraw(stub, 11_301)
    assert nothing.outcome == deal_pb2.REVERSAL_OUTCOME_NOT_CREDITED
    assert not nothing.HasField("sale")
    # No tombstone: a later genuine win, of any time, is credited.
    later = stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=_sale(11_301, "WonLater", 10)))
    assert not (later.duplicate or later.superseded)
    assert _figures(stub, "WonLater") == (1, 10, 0, 0)


def test_batch_reattributes_per_request_and_a_lead_twice_in_order(stub) -> None:  # type: ignore[no-untyped-def]
    _batch(stub, _sale(11_401, "FirstB", 100), _sale(11_402, "FirstB", 200))
    request = traffic_pb2.BatchRecordSalesRequest(
        requests=[
            traffic_pb2.RecordSaleRequest(sale=_sale(11_401, "SecondB", 100), reattribute=True),
            traffic_pb2.RecordSaleRequest(sale=_sale(11_402, "SecondB", 200)),  # normal: kept
            traffic_pb2.RecordSaleRequest(sale=_sale(11_401, "ThirdB", 100), reattribute=True),
            traffic_pb2.RecordSaleRequest(sale=_sale(11_403, "SecondB", 300), reattribute=True),
        ]
    )
    replies = stub.BatchRecordSales(request).responses
    assert [(r.sale.targetologist, r.reattributed, r.duplicate) for r in replies] == [
        ("SecondB", True, False),
        ("FirstB", False, True),
        ("ThirdB", True, False),
        ("SecondB", False, False),
    ]
    assert [r.previous_targetologist for r in replies] == ["FirstB", "", "SecondB", ""]
    listed = _listed(stub, 11_401)
    assert [(s.targetologist, s.HasField("reattributed_at")) for s in listed] == [
        ("ThirdB", False),
        ("SecondB", True),
        ("FirstB", True),
    ]
    assert _figures(stub, "ThirdB") == (1, 100, 0, 0)
    assert _figures(stub, "SecondB") == (1, 300, 1, 100)


def test_concurrent_reattributions_of_one_lead_leave_exactly_one_live_sale(stub) -> None:  # type: ignore[no-untyped-def]
    stub.RecordSale(traffic_pb2.RecordSaleRequest(sale=_sale(11_501, "Start", 100)))
    names = [f"Racer{n % 3}" for n in range(12)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        replies = list(pool.map(lambda name: _reattribute(stub, _sale(11_501, name, 100)), names))
    assert all(r.reattributed or r.duplicate for r in replies)
    listed = _listed(stub, 11_501)
    [live] = [s for s in listed if not s.HasField("reattributed_at")]
    assert not live.HasField("reversed_at")
    # Each re-attribution replaced the live sale of its time: a chain, nothing lost.
    assert len(listed) == 1 + sum(r.reattributed for r in replies)
    assert all(s.reversal_reason == "re-attributed" for s in listed if s is not live)
    revenue = sum(_figures(stub, name)[1] for name in {*names, "Start"})
    assert revenue == 100


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (traffic_pb2.WithdrawSaleRequest(), "lead_id"),
        (traffic_pb2.WithdrawSaleRequest(lead_id=1, account_id=-1), "account_id"),
        (traffic_pb2.WithdrawSaleRequest(lead_id=1, reason="r" * 501), "reason"),
    ],
)
def test_bad_withdrawal_is_invalid_argument_naming_the_field(stub, request_, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        stub.WithdrawSale(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(f"{field}:")
