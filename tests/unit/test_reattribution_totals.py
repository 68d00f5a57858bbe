"""The preview's comparison and totals (edge/reattribution.py), by table: who each decision
credits, what counts as a change, and the figures per party before, after and between."""

import pytest

from amoroute.v1 import deal_pb2, router_pb2
from edge.log_store import WonEvent
from edge.reattribution import Preview, parties

D = router_pb2.RoutingDecision


def route(decision: int, targetologist: str = "", code: str = "", reason: str = "") -> router_pb2.Route:
    return router_pb2.Route(decision=decision, targetologist=targetologist, referral_code=code,
                            reason=reason)


@pytest.mark.parametrize(("decision", "expected"), [
    (route(D.ROUTING_DECISION_TRAFFIC, "Kenesary"), ("traffic:Kenesary",)),
    (route(D.ROUTING_DECISION_REFERRAL, code="ABC123"), ("referral:ABC123",)),
    (route(D.ROUTING_DECISION_BOTH, "Aidana", "ABC123"), ("referral:ABC123", "traffic:Aidana")),
    (route(D.ROUTING_DECISION_UNKNOWN), ("unknown",)),
    (route(D.ROUTING_DECISION_IGNORED), ()),
])
def test_each_decision_credits_its_parties(decision: router_pb2.Route, expected: tuple) -> None:
    assert parties(decision) == expected


def decided(preview: Preview, lead_id: int, price: int, before: router_pb2.Route,
            after: router_pb2.Route) -> None:
    preview.add(WonEvent(lead_id * 10, lead_id, "{}"), deal_pb2.Deal(lead_id=lead_id, price=price),
                router_pb2.ExplainedRoute(current=before, candidate=after))


def test_a_both_deal_counts_for_both_parties_and_a_move_shows_in_the_difference() -> None:
    preview = Preview()
    kenesary = route(D.ROUTING_DECISION_TRAFFIC, "Kenesary", reason="matched")
    decided(preview, 1, 100, route(D.ROUTING_DECISION_UNKNOWN, reason="nobody"), kenesary)
    decided(preview, 2, 40, route(D.ROUTING_DECISION_BOTH, "Aidana", "P1"),
            route(D.ROUTING_DECISION_BOTH, "Aidana", "P1"))
    decided(preview, 3, 7, kenesary, route(D.ROUTING_DECISION_TRAFFIC, "Aidana"))
    assert (preview.events, preview.changed) == (3, 2)
    assert [(c["lead_id"], c["amount"], c["before"]["parties"], c["after"]["parties"])
            for c in preview.changes] == [
        (1, 100, ["unknown"], ["traffic:Kenesary"]),
        (3, 7, ["traffic:Kenesary"], ["traffic:Aidana"]),
    ]
    assert preview.changes[0]["after"] == {"decision": "traffic",
                                           "parties": ["traffic:Kenesary"], "reason": "matched"}
    assert preview.totals() == [
        {"party": "unknown", "before": {"count": 1, "revenue": 100},
         "after": {"count": 0, "revenue": 0}, "diff": {"count": -1, "revenue": -100}},
        {"party": "traffic:Kenesary", "before": {"count": 1, "revenue": 7},
         "after": {"count": 1, "revenue": 100}, "diff": {"count": 0, "revenue": 93}},
        {"party": "traffic:Aidana", "before": {"count": 1, "revenue": 40},
         "after": {"count": 2, "revenue": 47}, "diff": {"count": 1, "revenue": 7}},
        {"party": "referral:P1", "before": {"count": 1, "revenue": 40},
         "after": {"count": 1, "revenue": 40}, "diff": {"count": 0, "revenue": 0}},
    ]


def test_only_the_first_changes_are_listed_and_all_are_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("edge.reattribution.MAX_CHANGES", 2)
    preview = Preview()
    for lead in range(1, 6):
        decided(preview, lead, 1, route(D.ROUTING_DECISION_UNKNOWN),
                route(D.ROUTING_DECISION_TRAFFIC, "Kenesary"))
    assert preview.changed == 5
    assert [c["lead_id"] for c in preview.changes] == [1, 2]
