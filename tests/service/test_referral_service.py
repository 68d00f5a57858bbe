"""ReferralService on an ephemeral port against a real database."""

import logging
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from amoroute.channels import channel
from amoroute.v1 import deal_pb2, referral_pb2, referral_pb2_grpc
from referral_svc import server
from referral_svc.settings import Settings


@pytest.fixture(scope="module")
def stub(make_database) -> Iterator[referral_pb2_grpc.ReferralServiceStub]:  # type: ignore[no-untyped-def]
    settings = Settings(referral_database_url=make_database("referral"))
    server.upgrade_database(settings)
    running = server.build(settings, port=0)
    with channel(f"localhost:{running.port}") as ch:
        yield referral_pb2_grpc.ReferralServiceStub(ch)
    running.stop(0)


def _conversion(
    lead_id: int, code: str = "test123", amount: int = 150000, won_at: int = 1750694400
) -> referral_pb2.Conversion:
    return referral_pb2.Conversion(
        lead_id=lead_id,
        account_id=32145678,
        referral_code=code,
        amount=amount,
        deal_name="Курс «Таргетолог PRO»",
        won_at=Timestamp(seconds=won_at),
        utm=deal_pb2.UtmMarks(source=f"ref_{code}", medium="partner"),
    )


def _record(stub, conversion: referral_pb2.Conversion) -> referral_pb2.RecordConversionResponse:  # type: ignore[no-untyped-def]
    return stub.RecordConversion(referral_pb2.RecordConversionRequest(conversion=conversion))


def _upsert(stub, code: str, name: str, bp: int = 0) -> referral_pb2.UpsertPartnerResponse:  # type: ignore[no-untyped-def]
    partner = referral_pb2.Partner(referral_code=code, name=name, commission_bp=bp)
    return stub.UpsertPartner(referral_pb2.UpsertPartnerRequest(partner=partner))


def test_recording_a_conversion_twice_stores_it_once_and_says_duplicate(stub) -> None:  # type: ignore[no-untyped-def]
    first = _record(stub, _conversion(1001))
    again = _record(stub, _conversion(1001, amount=1))
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.conversion.amount == 150000  # the first record stands
    listed = stub.ListConversions(referral_pb2.ListConversionsRequest(lead_id=1001))
    assert [c.lead_id for c in listed.conversions] == [1001]
    stored = listed.conversions[0]
    assert stored.referral_code == "TEST123"
    assert stored.utm.source == "ref_test123"
    assert stored.deal_name == "Курс «Таргетолог PRO»"
    assert stored.won_at.seconds == 1750694400


def test_unregistered_code_is_recorded_flagged_then_registered(stub, caplog) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level(logging.WARNING, logger="referral_svc"):
        recorded = _record(stub, _conversion(1101, code="Newbie7"))
    assert recorded.conversion.partner_registered is False
    assert (
        "referral code NEWBIE7 has no registered partner; "
        "conversion for lead 1101 recorded for review"
    ) in caplog.messages

    created = _upsert(stub, "newbie7", "Aigerim", 1000)
    assert created.created is True
    assert created.partner == referral_pb2.Partner(
        referral_code="NEWBIE7", name="Aigerim", commission_bp=1000
    )
    updated = _upsert(stub, "NEWBIE7", "Aigerim B.", 1500)
    assert updated.created is False

    listed = stub.ListConversions(referral_pb2.ListConversionsRequest(referral_code="newbie7"))
    assert [(c.lead_id, c.partner_registered) for c in listed.conversions] == [(1101, True)]
    stats = stub.GetReferrerStats(referral_pb2.GetReferrerStatsRequest(referral_code="Newbie7"))
    assert [(s.partner_name, s.commission_bp) for s in stats.stats] == [("Aigerim B.", 1500)]


def test_stats_of_many_largest_amounts_fit_their_fields(stub) -> None:  # type: ignore[no-untyped-def]
    _upsert(stub, "WHALE", "Big Partner", 10_000)
    for lead in range(3101, 3111):
        _record(stub, _conversion(lead, code="whale", amount=10**15, won_at=6_000_000))
    [stats] = stub.GetReferrerStats(referral_pb2.GetReferrerStatsRequest(referral_code="WHALE")).stats
    assert (stats.conversions, stats.amount_total, stats.commission_total) == (10, 10**16, 10**16)


def test_stats_sum_per_code_with_commission_rounded_down_biggest_amount_first(stub) -> None:  # type: ignore[no-untyped-def]
    _upsert(stub, "COMM1", "Partner One", 1250)
    _record(stub, _conversion(3001, code="comm1", amount=700, won_at=5_000_000))
    _record(stub, _conversion(3002, code="COMM1", amount=301, won_at=5_000_100))
    _record(stub, _conversion(3003, code="stranger", amount=5000, won_at=5_000_200))
    reply = stub.GetReferrerStats(
        referral_pb2.GetReferrerStatsRequest(
            won_from=Timestamp(seconds=5_000_000), won_to=Timestamp(seconds=5_001_000)
        )
    )
    assert [
        (
            s.referral_code,
            s.conversions,
            s.amount_total,
            s.partner_registered,
            s.partner_name,
            s.commission_bp,
            s.commission_total,
        )
        for s in reply.stats
    ] == [
        ("STRANGER", 1, 5000, False, "", 0, 0),
        ("COMM1", 2, 1001, True, "Partner One", 1250, 125),  # 125.125 rounded down
    ]


def test_stats_count_only_conversions_won_within_the_range(stub) -> None:  # type: ignore[no-untyped-def]
    _record(stub, _conversion(4001, code="RANGE", amount=100, won_at=1_000_000))
    _record(stub, _conversion(4002, code="RANGE", amount=250, won_at=1_499_999))
    _record(stub, _conversion(4003, code="RANGE", amount=999, won_at=1_500_000))  # to is exclusive
    _record(stub, _conversion(4004, code="RANGE", amount=999, won_at=999_999))
    reply = stub.GetReferrerStats(
        referral_pb2.GetReferrerStatsRequest(
            referral_code="range",
            won_from=Timestamp(seconds=1_000_000),
            won_to=Timestamp(seconds=1_500_000),
        )
    )
    assert [(s.referral_code, s.conversions, s.amount_total) for s in reply.stats] == [
        ("RANGE", 2, 350)
    ]


def test_list_conversions_within_a_won_range_newest_first(stub) -> None:  # type: ignore[no-untyped-def]
    for lead, won_at in [(4101, 7_000_000), (4102, 7_000_100), (4103, 8_000_000), (4104, 6_999_999)]:
        _record(stub, _conversion(lead, code="LISTED", amount=10, won_at=won_at))
    within = stub.ListConversions(referral_pb2.ListConversionsRequest(
        referral_code="listed", won_from=Timestamp(seconds=7_000_000),
        won_to=Timestamp(seconds=8_000_000),
    ))
    assert [c.lead_id for c in within.conversions] == [4102, 4101]


def test_list_conversions_pages_without_gaps_or_repeats(stub) -> None:  # type: ignore[no-untyped-def]
    for lead in range(2001, 2008):
        _record(stub, _conversion(lead, code="PAGER"))
    seen, token = [], ""
    while True:
        page = stub.ListConversions(
            referral_pb2.ListConversionsRequest(
                page_size=3, page_token=token, referral_code="pager"
            )
        )
        seen += [c.lead_id for c in page.conversions]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(range(2007, 2000, -1))


def _record_request(**fields) -> tuple[str, object]:  # type: ignore[no-untyped-def]
    conversion = referral_pb2.Conversion(**fields)
    return "RecordConversion", referral_pb2.RecordConversionRequest(conversion=conversion)


def _reverse_request(**fields) -> tuple[str, object]:  # type: ignore[no-untyped-def]
    return "ReverseConversion", referral_pb2.ReverseConversionRequest(**fields)


def _withdraw_request(**fields) -> tuple[str, object]:  # type: ignore[no-untyped-def]
    return "WithdrawConversion", referral_pb2.WithdrawConversionRequest(**fields)


def _partner_request(**fields) -> tuple[str, object]:  # type: ignore[no-untyped-def]
    partner = referral_pb2.Partner(**fields)
    return "UpsertPartner", referral_pb2.UpsertPartnerRequest(partner=partner)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (_record_request(referral_code="K1"), "conversion.lead_id"),
        (_record_request(lead_id=-5, referral_code="K1"), "conversion.lead_id"),
        (_record_request(lead_id=5, account_id=-1, referral_code="K1"), "conversion.account_id"),
        (_record_request(lead_id=5), "conversion.referral_code"),
        (_record_request(lead_id=5, referral_code="bad code!"), "conversion.referral_code"),
        (_record_request(lead_id=5, referral_code="X" * 65), "conversion.referral_code"),
        (_record_request(lead_id=5, referral_code="K1", amount=-1), "conversion.amount"),
        (_record_request(lead_id=5, referral_code="K1", amount=10**15 + 1), "conversion.amount"),
        (
            _record_request(lead_id=5, referral_code="K1", deal_name="d" * 10_001),
            "conversion.deal_name",
        ),
        (
            _record_request(
                lead_id=5, referral_code="K1", utm=deal_pb2.UtmMarks(campaign="\x00")
            ),
            "conversion.utm.campaign",
        ),
        (_reverse_request(account_id=1), "lead_id"),
        (_reverse_request(lead_id=-5), "lead_id"),
        (_reverse_request(lead_id=5, account_id=-1), "account_id"),
        (_reverse_request(lead_id=5, reason="r" * 501), "reason"),
        (_withdraw_request(), "lead_id"),
        (_withdraw_request(lead_id=5, account_id=-1), "account_id"),
        (_withdraw_request(lead_id=5, reason="r" * 501), "reason"),
        (_partner_request(name="No code"), "partner.referral_code"),
        (_partner_request(referral_code="ref?X"), "partner.referral_code"),
        (_partner_request(referral_code="K1", name="n" * 201), "partner.name"),
        (_partner_request(referral_code="K1", commission_bp=-1), "partner.commission_bp"),
        (_partner_request(referral_code="K1", commission_bp=10_001), "partner.commission_bp"),
        (
            (
                "GetReferrerStats",
                referral_pb2.GetReferrerStatsRequest(
                    won_from=Timestamp(seconds=2_000), won_to=Timestamp(seconds=2_000)
                ),
            ),
            "won_to",
        ),
        (("ListConversions", referral_pb2.ListConversionsRequest(page_size=-1)), "page_size"),
        (
            (
                "ListConversions",
                referral_pb2.ListConversionsRequest(
                    won_from=Timestamp(seconds=9_000), won_to=Timestamp(seconds=8_000)
                ),
            ),
            "won_to",
        ),
    ],
)
def test_bad_request_is_rejected_with_invalid_argument_naming_the_field(stub, call, field) -> None:  # type: ignore[no-untyped-def]
    method, request = call
    with pytest.raises(grpc.RpcError) as err:
        getattr(stub, method)(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(f"{field}: ")


def test_foreign_page_token_is_invalid_argument(stub) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        stub.ListConversions(referral_pb2.ListConversionsRequest(page_token="garbage!"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in err.value.details()


def _reverse(stub, lead_id: int, at: int):  # type: ignore[no-untyped-def]
    return stub.ReverseConversion(
        referral_pb2.ReverseConversionRequest(
            lead_id=lead_id,
            account_id=32145678,
            reversed_at=Timestamp(seconds=at),
            reason="status 142 -> 143",
        )
    )


def _stats(stub, code: str) -> referral_pb2.ReferrerStats:  # type: ignore[no-untyped-def]
    [stats] = stub.GetReferrerStats(referral_pb2.GetReferrerStatsRequest(referral_code=code)).stats
    return stats


def test_conversion_that_leaves_won_is_kept_marked_reversed_and_shown_in_stats(stub) -> None:  # type: ignore[no-untyped-def]
    _record(stub, _conversion(5001, code="REVERSER", amount=700, won_at=5_000_000))
    _record(stub, _conversion(5002, code="REVERSER", amount=300, won_at=5_000_000))
    reply = _reverse(stub, 5001, 5_000_100)
    assert reply.outcome == deal_pb2.REVERSAL_OUTCOME_REVERSED
    assert reply.conversion.reversed_at.seconds == 5_000_100
    assert _reverse(stub, 5001, 5_000_200).outcome == deal_pb2.REVERSAL_OUTCOME_ALREADY_REVERSED
    stats = _stats(stub, "reverser")
    assert (
        stats.conversions,
        stats.amount_total,
        stats.reversed_conversions,
        stats.reversed_amount,
    ) == (1, 300, 1, 700)
    [kept] = stub.ListConversions(referral_pb2.ListConversionsRequest(lead_id=5001)).conversions
    assert kept.reversal_reason == "status 142 -> 143"
    assert kept.reversed_at.seconds == 5_000_100


def test_commission_is_paid_on_credited_amounts_only(stub) -> None:  # type: ignore[no-untyped-def]
    _upsert(stub, "COMMREV", "Partner Rev", 1000)
    _record(stub, _conversion(5501, code="COMMREV", amount=2000, won_at=5_500_000))
    _record(stub, _conversion(5502, code="COMMREV", amount=990, won_at=5_500_000))
    assert _reverse(stub, 5501, 5_500_100).outcome == deal_pb2.REVERSAL_OUTCOME_REVERSED
    stats = _stats(stub, "COMMREV")
    assert (
        stats.conversions,
        stats.amount_total,
        stats.commission_total,
        stats.reversed_conversions,
        stats.reversed_amount,
    ) == (1, 990, 99, 1, 2000)


def test_older_won_arriving_after_newer_reversal_credits_nothing(stub) -> None:  # type: ignore[no-untyped-def]
    _upsert(stub, "LATE", "Late Partner", 1000)
    assert _reverse(stub, 5101, 6_000_100).outcome == deal_pb2.REVERSAL_OUTCOME_NOT_CREDITED
    late = _record(stub, _conversion(5101, code="late", amount=900, won_at=6_000_000))
    assert late.superseded and not late.duplicate
    assert late.conversion.reversed_at.seconds == 6_000_100
    assert late.conversion.reversal_reason == "status 142 -> 143"
    stats = _stats(stub, "LATE")
    assert (stats.conversions, stats.amount_total, stats.commission_total) == (0, 0, 0)
    assert (stats.reversed_conversions, stats.reversed_amount) == (1, 900)


def test_stale_reversal_older_than_the_win_is_ignored_and_a_new_win_reinstates(stub) -> None:  # type: ignore[no-untyped-def]
    _record(stub, _conversion(5201, code="AGAIN", amount=100, won_at=7_000_000))
    assert _reverse(stub, 5201, 6_999_000).outcome == deal_pb2.REVERSAL_OUTCOME_STALE
    assert _reverse(stub, 5201, 7_000_100).outcome == deal_pb2.REVERSAL_OUTCOME_REVERSED
    won_again = _record(stub, _conversion(5201, code="AGAIN", amount=100, won_at=7_000_200))
    assert not won_again.duplicate and not won_again.superseded
    assert not won_again.conversion.HasField("reversed_at")
    assert won_again.conversion.reversal_reason == ""
    replayed_old = _record(stub, _conversion(5201, code="AGAIN", amount=100, won_at=7_000_000))
    assert replayed_old.duplicate
    stats = _stats(stub, "AGAIN")
    assert (stats.conversions, stats.amount_total, stats.reversed_conversions) == (1, 100, 0)


def _batch(stub, *items: referral_pb2.Conversion, view: int = 0) -> list[referral_pb2.RecordConversionResponse]:  # type: ignore[no-untyped-def]
    request = referral_pb2.BatchRecordConversionsRequest(
        requests=[referral_pb2.RecordConversionRequest(conversion=c) for c in items], view=view
    )
    return list(stub.BatchRecordConversions(request).responses)


def _listed(stub, lead_id: int) -> list[referral_pb2.Conversion]:  # type: ignore[no-untyped-def]
    request = referral_pb2.ListConversionsRequest(lead_id=lead_id)
    return list(stub.ListConversions(request).conversions)


def test_batch_records_conversions_as_the_single_rpc_would_in_request_order(stub, caplog) -> None:  # type: ignore[no-untyped-def]
    _upsert(stub, "BATCH", "Batch Partner", 1000)
    _record(stub, _conversion(8002, code="BATCH", amount=200, won_at=9_000_000))
    _reverse(stub, 8003, 9_000_100)  # a newer reversal is known before the win
    _record(stub, _conversion(8004, code="BATCH", amount=400, won_at=9_000_000))
    _reverse(stub, 8004, 9_000_100)
    with caplog.at_level(logging.WARNING, logger="referral_svc"):
        replies = _batch(
            stub,
            _conversion(8001, code="batch", amount=100, won_at=9_000_000),  # new
            _conversion(8002, code="BATCH", amount=1, won_at=9_000_000),  # recorded before
            _conversion(
                8003, code="BATCH", amount=300, won_at=9_000_000
            ),  # older than its reversal
            _conversion(
                8004, code="BATCH", amount=400, won_at=9_000_200
            ),  # won again after its reversal
            _conversion(8005, code="Unknown8", amount=500, won_at=9_000_000),  # new, no partner
        )
    assert [(r.conversion.lead_id, r.duplicate, r.superseded) for r in replies] == [
        (8001, False, False),
        (8002, True, False),
        (8003, False, True),
        (8004, False, False),
        (8005, False, False),
    ]
    assert [r.conversion.partner_registered for r in replies] == [True, True, True, True, False]
    assert [r.conversion.referral_code for r in replies] == ["BATCH"] * 4 + ["UNKNOWN8"]
    assert replies[1].conversion.amount == 200  # the first record stands
    assert replies[2].conversion.reversed_at.seconds == 9_000_100
    assert not replies[3].conversion.HasField("reversed_at")
    assert replies[3].conversion.won_at.seconds == 9_000_200
    assert [m for m in caplog.messages if "no registered partner" in m] == [
        "referral code UNKNOWN8 has no registered partner; "
        "conversion for lead 8005 recorded for review"
    ]
    [reinstated] = _listed(stub, 8004)
    assert not reinstated.HasField("reversed_at") and reinstated.reversal_reason == ""
    stats = _stats(stub, "BATCH")
    assert (stats.conversions, stats.amount_total, stats.reversed_conversions) == (3, 700, 1)


def test_batch_in_outcome_view_answers_what_happened_without_the_conversions(stub) -> None:  # type: ignore[no-untyped-def]
    _batch(stub, _conversion(8602, code="OUTCOME", amount=200, won_at=9_600_000))
    _reverse(stub, 8603, 9_600_100)
    replies = _batch(
        stub,
        _conversion(8601, code="OUTCOME", amount=100, won_at=9_600_000),
        _conversion(8602, code="OUTCOME", amount=200, won_at=9_600_000),
        _conversion(8603, code="OUTCOME", amount=300, won_at=9_600_000),
        view=deal_pb2.WRITE_VIEW_OUTCOME,
    )
    assert [(r.HasField("conversion"), r.duplicate, r.superseded) for r in replies] == [
        (False, False, False),
        (False, True, False),
        (False, False, True),
    ]
    [stored] = _listed(stub, 8601)
    assert (stored.referral_code, stored.amount) == ("OUTCOME", 100)


def test_batch_answers_a_lead_given_twice_against_the_row_its_first_item_stored(stub) -> None:  # type: ignore[no-untyped-def]
    _reverse(stub, 8102, 9_100_100)
    replies = _batch(
        stub,
        _conversion(8101, code="TWICE", amount=100, won_at=9_100_000),
        _conversion(
            8102, code="TWICE", amount=200, won_at=9_100_000
        ),  # superseded by the reversal...
        _conversion(
            8101, code="TWICE", amount=1, won_at=9_100_000
        ),  # ...duplicate of the row just inserted
        _conversion(
            8102, code="TWICE", amount=200, won_at=9_100_200
        ),  # ...won again after that reversal
        _conversion(
            8102, code="TWICE", amount=200, won_at=9_100_300
        ),  # duplicate of the reinstated row
    )
    assert [(r.conversion.lead_id, r.duplicate, r.superseded) for r in replies] == [
        (8101, False, False),
        (8102, False, True),
        (8101, True, False),
        (8102, False, False),
        (8102, True, False),
    ]
    assert replies[2].conversion.amount == 100
    assert replies[4].conversion.won_at.seconds == 9_100_200
    assert [c.lead_id for c in _listed(stub, 8101)] == [8101]
    [stored] = _listed(stub, 8102)
    assert not stored.HasField("reversed_at") and stored.won_at.seconds == 9_100_200


def test_batch_with_a_bad_conversion_is_rejected_naming_it_and_records_nothing(stub) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        _batch(stub, _conversion(8201), _conversion(8202, code="bad code!"), _conversion(8203))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("requests[1].conversion.referral_code: ")
    assert _listed(stub, 8201) == [] and _listed(stub, 8203) == []


def test_batch_of_500_is_recorded_and_one_of_501_is_rejected_naming_requests(stub) -> None:  # type: ignore[no-untyped-def]
    conversions = [_conversion(lead, code="BULK", amount=1) for lead in range(10_000, 10_501)]
    with pytest.raises(grpc.RpcError) as err:
        _batch(stub, *conversions)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("requests: ")
    assert _listed(stub, 10_000) == []
    replies = _batch(stub, *conversions[:500])
    assert [r.conversion.lead_id for r in replies] == list(range(10_000, 10_500))
    assert not any(r.duplicate or r.superseded for r in replies)


def test_empty_batch_answers_no_responses(stub) -> None:  # type: ignore[no-untyped-def]
    assert _batch(stub) == []


def test_reattributed_conversion_moves_amount_and_commission_to_the_new_code(stub) -> None:  # type: ignore[no-untyped-def]
    _upsert(stub, "OLDCODE", "Old partner", 1000)
    _upsert(stub, "NEWCODE", "New partner", 2000)
    _record(stub, _conversion(12_001, code="oldcode", amount=10_000))
    request = referral_pb2.RecordConversionRequest(
        conversion=_conversion(12_001, code="newcode", amount=10_000), reattribute=True
    )
    moved = stub.RecordConversion(request)
    assert moved.reattributed and moved.previous_referral_code == "OLDCODE"
    assert moved.conversion.referral_code == "NEWCODE" and moved.conversion.partner_registered
    new, old = _listed(stub, 12_001)
    assert not new.HasField("reattributed_at") and old.HasField("reattributed_at")
    assert old.reversal_reason == "re-attributed" and old.partner_registered
    old_stats, new_stats = _stats(stub, "oldcode"), _stats(stub, "newcode")
    assert (old_stats.amount_total, old_stats.commission_total, old_stats.reversed_amount) == (
        0,
        0,
        10_000,
    )
    assert (new_stats.amount_total, new_stats.commission_total) == (10_000, 2_000)
    assert stub.RecordConversion(request).duplicate  # a second apply: nothing to do


def test_withdrawn_conversion_is_reversed_and_an_uncredited_lead_left_alone(stub) -> None:  # type: ignore[no-untyped-def]
    _record(stub, _conversion(12_101, code="GONE", amount=500))

    def withdraw(lead_id: int) -> referral_pb2.WithdrawConversionResponse:
        return stub.WithdrawConversion(
            referral_pb2.WithdrawConversionRequest(
                lead_id=lead_id, account_id=32145678, reason="no referral code"
            )
        )

    reply = withdraw(12_101)
    assert reply.outcome == deal_pb2.REVERSAL_OUTCOME_REVERSED
    assert reply.conversion.reversal_reason == "re-attributed: no referral code"
    assert withdraw(12_101).outcome == deal_pb2.REVERSAL_OUTCOME_ALREADY_REVERSED
    stats = _stats(stub, "gone")
    assert (stats.conversions, stats.reversed_conversions, stats.commission_total) == (0, 1, 0)
    assert withdraw(12_102).outcome == deal_pb2.REVERSAL_OUTCOME_NOT_CREDITED
    # Nothing remembered: an old win arriving later is credited, not superseded.
    late = _record(stub, _conversion(12_102, code="LATE", won_at=1_000))
    assert not (late.superseded or late.duplicate)
