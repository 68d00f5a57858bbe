"""The review queue of unknown sales through real services: webhooks with drifted sources
are routed `unknown` by the real router, grouped by the edge, and the router suggests who
they belong to (SuggestOwners) with the referral codes referral_svc knows."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import falcon.testing
import pytest

from amoroute.channels import channel
from amoroute.v1 import router_pb2, router_pb2_grpc
from tests.admin.helpers import AUTH, FORM, Seeder, admin_client, migrated_edge_database
from tests.support.forms import encode, won_deal_body
from tests.support.services import start_services
from tests.support.waiting import eventually

REVIEW = "/api/admin/review/unknown"
DISMISSALS = "/api/admin/review/unknown/dismissals"


@dataclass
class Stack:
    client: falcon.testing.TestClient
    seed: Seeder
    database: str
    router: router_pb2_grpc.RouterServiceStub

    def webhook(self, *leads: dict[str, str]) -> list[int]:
        """Post the leads and wait until each event is routed (after the answer)."""
        reply = self.client.simulate_post("/webhook/amocrm", body=encode(*leads), headers=FORM)
        assert reply.status_code == 200, reply.text
        log_ids = reply.json["log_ids"]
        assert eventually(lambda: all(self._routed(i) for i in log_ids)), f"{log_ids} not routed"
        return log_ids

    def _routed(self, log_id: int) -> bool:
        reply = self.client.simulate_get(f"/api/admin/webhook-logs/{log_id}", headers=AUTH)
        return reply.json["processing_status"] != "pending"

    def review(self, **params: object) -> dict:
        reply = self.client.simulate_get(REVIEW, params=params, headers=AUTH)
        assert reply.status_code == 200, reply.text
        return reply.json


def by_key(answer: dict) -> dict[str, dict]:
    return {g["key"]: g for g in answer["groups"]}


@pytest.fixture(scope="module")
def stack(make_database) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    services = start_services(make_database)
    database = migrated_edge_database(make_database)
    router = services.start_router()
    client = admin_client(
        database,
        router_addr=router,
        referral_addr=services.addr("referral"),
        traffic_addr=services.addr("traffic"),
        router_deadline_s=5.0,
    )
    seeder = Seeder(database)
    router_channel = channel(router)
    stack = Stack(client, seeder, database, router_pb2_grpc.RouterServiceStub(router_channel))
    # A conversion makes ABC123 a code referral_svc knows.
    stack.webhook(won_deal_body(7700000, "ref_ABC123", price=5000))
    odd_price = won_deal_body(7700007, "KENESARY-fb", index=6)
    odd_price["leads[status][6][price]"] = "12 500.60"  # as AmoCRM may send it: 12501
    stack.webhook(
        won_deal_body(7700001, "Kenesary-FB", price=100000),
        won_deal_body(7700002, "kenesary fb", price=50000, index=1),
        won_deal_body(7700003, "kenesry_fb", price=30000, index=2),
        won_deal_body(7700004, "REF-abc123 ", price=20000, index=3),
        won_deal_body(7700005, "google", price=10000, index=4),
        won_deal_body(7700006, "google", "brand", price=4000, index=5),
        odd_price,
    )
    yield stack
    router_channel.close()
    seeder.close()
    services.stop()


def test_drifted_sources_are_grouped_with_count_revenue_and_leads(stack: Stack) -> None:
    answer = stack.review()
    groups = by_key(answer)
    assert list(groups) == ["kenesary_fb", "kenesry_fb", "ref_abc123", "google", "google / brand"]
    kenesary = groups["kenesary_fb"]
    assert (kenesary["source"], kenesary["campaign"]) == ("kenesary_fb", "")
    assert (kenesary["count"], kenesary["revenue"]) == (3, 100000 + 50000 + 12501)
    assert [(v["utm_source"], v["count"], v["revenue"]) for v in kenesary["variants"]] == [
        ("Kenesary-FB", 1, 100000),
        ("kenesary fb", 1, 50000),
        ("KENESARY-fb", 1, 12501),
    ]
    assert kenesary["lead_ids"] == [7700007, 7700002, 7700001]
    assert len(kenesary["log_ids"]) == 3
    assert kenesary["first_seen"] <= kenesary["last_seen"]
    assert kenesary["dismissed"] is None
    # The referral conversion that was credited is no unknown sale.
    assert "ref_abc123" in groups and groups["ref_abc123"]["lead_ids"] == [7700004]
    assert answer["total_count"] == 7
    assert answer["total_revenue"] == 162501 + 30000 + 20000 + 10000 + 4000
    assert answer["total_groups"] == 5


def test_each_group_says_who_it_most_likely_belongs_to_and_why(stack: Stack) -> None:
    answer = stack.review()
    assert "suggestions_error" not in answer, answer["suggestions_error"]
    groups = by_key(answer)
    [best, *_] = groups["kenesary_fb"]["suggestions"]
    assert (best["kind"], best["target"], best["typos"], best["marks_covered"]) == (
        "targetologist", "Kenesary", 0, 3)
    assert "only in case, separators or spaces" in best["why"]
    assert [c["add_pattern"]["pattern"] for c in best["changes"]] == [
        "kenesary-fb", "kenesary fb"]
    typo = groups["kenesry_fb"]["suggestions"][0]
    assert (typo["target"], typo["typos"]) == ("Kenesary", 1)
    assert "'kenesry_fb' is 1 typo away from pattern 'kenesary_*'" in typo["why"]
    referral = groups["ref_abc123"]["suggestions"][0]
    assert (referral["kind"], referral["target"]) == ("referral", "ABC123")
    assert referral["changes"] == [
        {"add_referral_alias": {"source": "REF-abc123", "code": "ABC123"}}]
    assert groups["google"]["suggestions"] == []
    # Made against the current rules version, with that document changed to credit them.
    current = stack.router.GetRules(router_pb2.GetRulesRequest()).current
    assert (answer["rules_version"], answer["rules_source"]) == (current.version, "database")
    assert (best["rules_version"], best["already_in_rules"]) == (current.version, False)
    assert "+    - kenesary-fb\n+    - kenesary fb\n" in best["proposed_diff"]
    assert [line[0] for line in best["proposed_diff"].splitlines()[2:] if line[0] in "+-"] == [
        "+", "+"]


def test_a_lead_credited_later_leaves_the_queue_and_an_ignored_event_does_not(
    stack: Stack,
) -> None:
    stack.seed.deal(7710001, "aidna_ig", decision="unknown")
    stack.seed.deal(7710002, "aidna_ig", decision="unknown")
    assert by_key(stack.review())["aidna_ig"]["lead_ids"] == [7710002, 7710001]
    # After a rules change a replay of 7710001 credits it; 7710002 only left won.
    stack.seed.deal(7710001, "aidna_ig", decision="traffic", source="replay")
    stack.seed.deal(7710002, "aidna_ig", decision="ignored")
    group = by_key(stack.review())["aidna_ig"]
    assert (group["lead_ids"], group["count"]) == ([7710002], 1)


def test_received_range_filters_the_sales(stack: Stack) -> None:
    stack.seed.deal(7720001, "facebook", decision="unknown",
                    received_at=datetime(2024, 1, 15, 12, tzinfo=UTC))
    january = stack.review(received_from="2024-01-01", received_to="2024-02-01T00:00:00+00:00")
    assert [g["key"] for g in january["groups"]] == ["facebook"]
    assert january["groups"][0]["first_seen"] == "2024-01-15T12:00:00+00:00"
    assert (january["total_count"], january["received_from"]) == (1, "2024-01-01T00:00:00+00:00")
    later = stack.review(received_from="2024-01-15T12:00:01Z")
    assert "facebook" not in by_key(later) and "kenesary_fb" in by_key(later)


def test_a_group_marked_not_attributable_leaves_the_queue_until_put_back(stack: Stack) -> None:
    before = stack.review()
    posted = stack.client.simulate_post(
        DISMISSALS, json={"key": "google / brand", "reason": " brand search, organic "},
        headers=AUTH)
    assert posted.status_code == 201, posted.text
    assert (posted.json["key"], posted.json["reason"], posted.json["by"]) == (
        "google / brand", "brand search, organic", "admin")
    after = stack.review()
    assert "google / brand" not in by_key(after)
    assert after["total_count"] == before["total_count"] - 1
    assert after["total_revenue"] == before["total_revenue"] - 4000
    shown = by_key(stack.review(include_dismissed="true"))["google / brand"]
    assert shown["dismissed"]["reason"] == "brand search, organic"
    assert shown["dismissed"]["at"] == posted.json["at"]

    deleted = stack.client.simulate_delete(DISMISSALS, params={"key": "google / brand"},
                                           headers=AUTH)
    assert deleted.status_code == 204
    assert "google / brand" in by_key(stack.review())
    again = stack.client.simulate_delete(DISMISSALS, params={"key": "google / brand"},
                                         headers=AUTH)
    assert again.status_code == 404 and "key" in again.json["description"]


def test_a_dismissal_records_the_signed_in_admin_by_name(stack: Stack) -> None:
    alice = "alice-token-0123456789abcdef0123456789"
    named = admin_client(stack.database, admin_tokens=f"alice:{alice}")
    posted = named.simulate_post(DISMISSALS, json={"key": "google", "reason": "direct"},
                                 headers={"Authorization": f"Bearer {alice}"})
    assert posted.status_code == 201, posted.text
    assert posted.json["by"] == "alice"
    shown = by_key(stack.review(include_dismissed="true"))["google"]["dismissed"]
    assert (shown["by"], shown["reason"]) == ("alice", "direct")
    assert stack.client.simulate_delete(DISMISSALS, params={"key": "google"},
                                        headers=AUTH).status_code == 204


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "field"),
    [
        ("GET", REVIEW, {"params": {"received_from": "yesterday"}}, "received_from"),
        ("GET", REVIEW, {"params": {"received_from": "2024-02-01", "received_to": "2024-01-01"}},
         "received_to"),
        ("GET", REVIEW, {"params": {"include_dismissed": "maybe"}}, "include_dismissed"),
        ("GET", REVIEW, {"params": {"limit": "0"}}, "limit"),
        ("GET", REVIEW, {"params": {"sort": "revenue"}}, "sort"),
        ("POST", DISMISSALS, {"json": {"key": "google"}}, "reason"),
        ("POST", DISMISSALS, {"json": {"key": "", "reason": "x"}}, "key"),
        ("POST", DISMISSALS, {"json": {"key": "google", "reason": "x", "by": "me"}}, "by"),
        ("POST", DISMISSALS, {"json": {"key": "g\u0000", "reason": "x"}}, "key"),
        # A lone surrogate, as JSON may escape it.
        ("POST", DISMISSALS, {"body": '{"key": "\\ud800", "reason": "x"}',
                              "content_type": "application/json"}, "key"),
        ("POST", DISMISSALS, {"json": {"key": "x" * 2001, "reason": "x"}}, "key"),
        ("POST", DISMISSALS, {"json": ["google"]}, "body"),
        ("DELETE", DISMISSALS, {"params": {}}, "key"),
    ],
)
def test_bad_input_is_refused_naming_the_parameter(
    stack: Stack, method: str, path: str, kwargs: dict, field: str
) -> None:
    reply = stack.client.simulate_request(method, path, headers=AUTH, **kwargs)
    assert reply.status_code == 400, reply.text
    assert reply.json["description"].startswith(f"{field}:")


@pytest.mark.parametrize(
    ("method", "path"), [("GET", REVIEW), ("POST", DISMISSALS), ("DELETE", DISMISSALS)]
)
def test_every_review_operation_needs_the_admin_token(
    stack: Stack, method: str, path: str
) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token-wrong-token"}):
        reply = stack.client.simulate_request(
            method, path, headers=headers, json={"key": "google", "reason": "organic"},
            params={"key": "google"} if method == "DELETE" else None)
        assert reply.status_code == 401, (method, path, headers)
    assert "google" in by_key(stack.review())


def test_groups_come_back_with_the_reason_when_no_suggestions_can_be_made(
    stack: Stack,
) -> None:
    # Same log, no services behind it.
    alone = admin_client(stack.database)
    reply = alone.simulate_get(REVIEW, headers=AUTH)
    assert reply.status_code == 200, reply.text
    groups = by_key(reply.json)
    assert "kenesary_fb" in groups and groups["kenesary_fb"]["suggestions"] == []
    assert "referral_svc at 127.0.0.1:9 did not answer" in reply.json["suggestions_error"]


def test_a_proposed_change_stored_as_the_next_rules_version_credits_new_sales(
    stack: Stack,
) -> None:
    answer = stack.review()
    best = by_key(answer)["kenesary_fb"]["suggestions"][0]
    stored = stack.router.UpdateRules(router_pb2.UpdateRulesRequest(
        yaml=best["proposed_rules_yaml"], expected_version=best["rules_version"],
        comment="Review: credit 'kenesary_fb' to Kenesary")).version
    assert stored.version == answer["rules_version"] + 1
    [log_id] = stack.webhook(won_deal_body(7730001, "kenesary fb", price=1000))
    routed = stack.client.simulate_get(f"/api/admin/webhook-logs/{log_id}", headers=AUTH).json
    assert routed["routing_decision"] == "traffic"
    after = stack.review()
    assert after["rules_version"] == stored.version
    # The sales already logged wait for their replay (re-attribution, part 3).
    group = by_key(after)["kenesary_fb"]
    assert 7730001 not in group["lead_ids"] and group["count"] == 3
    # The new version already credits these spellings: nothing is left to propose.
    best = group["suggestions"][0]
    assert (best["target"], best["already_in_rules"], best["proposed_diff"]) == (
        "Kenesary", True, "")


def test_the_proposed_change_saved_with_put_credits_new_sales_and_a_stale_one_is_refused(
    stack: Stack,
) -> None:
    answer = stack.review()
    best = by_key(answer)["kenesry_fb"]["suggestions"][0]
    assert (best["target"], best["rules_version"]) == ("Kenesary", answer["rules_version"])
    body = {"yaml": best["proposed_rules_yaml"], "expected_version": best["rules_version"],
            "comment": "Review: credit 'kenesry_fb' to Kenesary"}
    saved = stack.client.simulate_put("/api/admin/rules", headers=AUTH, json=body)
    assert saved.status_code == 200, saved.text
    assert saved.json["version"] == best["rules_version"] + 1
    assert saved.json["comment"] == "Review: credit 'kenesry_fb' to Kenesary"
    # A suggestion made against the version before is refused: the rules changed meanwhile.
    stale = stack.client.simulate_put("/api/admin/rules", headers=AUTH, json=body)
    assert stale.status_code == 409, stale.text
    [log_id] = stack.webhook(won_deal_body(7740001, "kenesry_fb", price=1000))
    routed = stack.client.simulate_get(f"/api/admin/webhook-logs/{log_id}", headers=AUTH).json
    assert (routed["routing_decision"], routed["utm_source"]) == ("traffic", "kenesry_fb")
    assert stack.review()["rules_version"] == saved.json["version"]
