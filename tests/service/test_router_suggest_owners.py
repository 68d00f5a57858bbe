"""RouterService.SuggestOwners on an ephemeral port: who the marks of unknown sales most
likely belong to, with the reason, and the rules document that credits them."""

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml

from amoroute.channels import channel
from amoroute.v1 import deal_pb2, router_pb2, router_pb2_grpc
from router_svc.rules import parse_rules_yaml
from tests.support.services import start_services

SHIPPED_RULES = Path("router_svc/routing_rules.yaml").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def router(make_database) -> Iterator[router_pb2_grpc.RouterServiceStub]:  # type: ignore[no-untyped-def]
    services = start_services(make_database)
    ch = channel(services.start_router())
    yield router_pb2_grpc.RouterServiceStub(ch)
    ch.close()
    services.stop()


def group(*sources: str, campaign: str = "") -> router_pb2.UtmGroup:
    return router_pb2.UtmGroup(
        marks=[deal_pb2.UtmMarks(source=s, campaign=campaign) for s in sources]
    )


def test_spellings_of_one_source_are_credited_by_one_proposed_document(
    router: router_pb2_grpc.RouterServiceStub,
) -> None:
    reply = router.SuggestOwners(
        router_pb2.SuggestOwnersRequest(
            groups=[group("Kenesary-FB", "kenesary fb"), group("kenesry_fb")],
            base_rules_yaml=SHIPPED_RULES,
        )
    )
    [spellings, typo] = reply.results
    best = spellings.suggestions[0]
    assert best.kind == router_pb2.SUGGESTION_KIND_TARGETOLOGIST
    assert (best.target, best.typos, best.marks_covered) == ("Kenesary", 0, 2)
    assert "only in case, separators or spaces" in best.why
    assert [c.add_pattern.pattern for c in best.changes] == ["kenesary-fb", "kenesary fb"]
    proposed = yaml.safe_load(best.proposed_rules_yaml)
    kenesary = proposed["traffic"]["targetologists"][0]
    assert kenesary["patterns"] == ["kenesary_*", "kenesary", "kenesary-fb", "kenesary fb"]
    # The proposed document is valid rules that credit both spellings.
    rules = parse_rules_yaml(best.proposed_rules_yaml)
    assert rules.targetologists[0].patterns[-2:] == ("kenesary-fb", "kenesary fb")
    assert (typo.suggestions[0].target, typo.suggestions[0].typos) == ("Kenesary", 1)
    assert "1 typo away from pattern 'kenesary_*'" in typo.suggestions[0].why


def test_a_referral_link_with_other_separators_becomes_an_alias_of_a_known_code(
    router: router_pb2_grpc.RouterServiceStub,
) -> None:
    reply = router.SuggestOwners(
        router_pb2.SuggestOwnersRequest(
            groups=[group("REF-abc123 "), group("google")],
            known_referral_codes=["ABC123"],
            base_rules_yaml=SHIPPED_RULES,
        )
    )
    [referral, nothing] = reply.results
    best = referral.suggestions[0]
    assert (best.kind, best.target, best.typos) == (router_pb2.SUGGESTION_KIND_REFERRAL, "ABC123", 0)
    assert best.changes[0].add_referral_alias == router_pb2.AddReferralAlias(
        source="REF-abc123", code="ABC123"
    )
    assert yaml.safe_load(best.proposed_rules_yaml)["referral"]["aliases"] == {
        "REF-abc123": "ABC123"
    }
    assert list(nothing.suggestions) == []


def test_without_a_base_it_suggests_against_the_rules_in_force_and_proposes_no_document(
    router: router_pb2_grpc.RouterServiceStub,
) -> None:
    reply = router.SuggestOwners(router_pb2.SuggestOwnersRequest(groups=[group("aidna_ig")]))
    [best] = reply.results[0].suggestions
    assert (best.target, best.typos, best.proposed_rules_yaml) == ("Aidana", 1, "")


def test_a_base_document_decides_who_can_be_suggested(
    router: router_pb2_grpc.RouterServiceStub,
) -> None:
    base = yaml.safe_load(SHIPPED_RULES)
    base["traffic"]["targetologists"].append({"name": "Dana", "patterns": ["dana_*"]})
    reply = router.SuggestOwners(
        router_pb2.SuggestOwnersRequest(
            groups=[group("Dana-IG")], base_rules_yaml=yaml.safe_dump(base)
        )
    )
    assert reply.results[0].suggestions[0].target == "Dana"


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (router_pb2.SuggestOwnersRequest(groups=[group("x")] * 501), "groups"),
        (router_pb2.SuggestOwnersRequest(groups=[group(*["x"] * 21)]), "groups[0].marks"),
        (
            router_pb2.SuggestOwnersRequest(groups=[group("ok"), group("a\x00b")]),
            "groups[1].marks[0].source",
        ),
        (router_pb2.SuggestOwnersRequest(known_referral_codes=["A"] * 2001), "known_referral_codes"),
        (router_pb2.SuggestOwnersRequest(known_referral_codes=["A" * 65]), "known_referral_codes[0]"),
        (router_pb2.SuggestOwnersRequest(base_rules_yaml="pipelines: [1"), "base_rules_yaml"),
        (router_pb2.SuggestOwnersRequest(base_rules_yaml="pipelines: [1]"), "base_rules_yaml"),
        (router_pb2.SuggestOwnersRequest(base_rules_yaml="- 1"), "base_rules_yaml"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    router: router_pb2_grpc.RouterServiceStub, request_: router_pb2.SuggestOwnersRequest, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        router.SuggestOwners(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith(f"{field}:")
