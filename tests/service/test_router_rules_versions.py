"""Routing rules as versions in the router's database, on real routers on ephemeral
ports (two replicas share one database where a test says so), calling the real
referral, traffic and notifier services."""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from amoroute.callers import EDGE, OPERATOR, ROUTER, CallerCredentials
from amoroute.channels import channel
from amoroute.v1 import deal_pb2, router_pb2, router_pb2_grpc, traffic_pb2, traffic_pb2_grpc
from router_svc.rules import DEFAULT_RULES_PATH
from tests.support.services import Services, start_services
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import eventually

D = router_pb2
SHIPPED = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
# The shipped rules with one more pattern for Aidana: deals from "promo_*" become hers.
WITH_PROMO = SHIPPED.replace('["aidana_*"]', '["aidana_*", "promo_*"]')
BAD_PATTERN = SHIPPED.replace('["aidana_*"]', "[42]")
TOKENS = {ROUTER: "router-token-rules-0123456789", EDGE: "edge-token-rules-0123456789",
          OPERATOR: "operator-token-rules-0123456789"}


class Stub:
    def __init__(self, stub: router_pb2_grpc.RouterServiceStub, port: int) -> None:
        self.rpc = stub
        self.port = port

    def current(self) -> D.RulesVersion:
        return self.rpc.GetRules(D.GetRulesRequest()).current

    def update(self, yaml: str, expected: int, author: str = "Dana", comment: str = "") -> int:
        return self.rpc.UpdateRules(D.UpdateRulesRequest(
            yaml=yaml, expected_version=expected, author=author, comment=comment)).version.version

    def versions(self) -> list[int]:
        return [v.version for v in self.rpc.ListRulesVersions(
            D.ListRulesVersionsRequest(page_size=100)).versions]

    def decision(self, utm_source: str, candidate: str = "") -> str:
        reply = self.rpc.ExplainRoute(D.ExplainRouteRequest(
            deal=won_deal(1, utm_source), candidate_rules_yaml=candidate))
        return D.RoutingDecision.Name(reply.route.decision)


@pytest.fixture(scope="module")
def services(make_database) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    started = start_services(make_database)
    yield started
    started.stop()


@pytest.fixture
def router(services: Services, request: pytest.FixtureRequest) -> Iterator[Callable[..., Stub]]:
    """Starts routers (each on a fresh database unless told one) and closes their channels."""
    channels: list[grpc.Channel] = []
    names: list[str] = []

    def start(credentials: CallerCredentials | None = None, **overrides: str | float) -> Stub:
        name = f"router-{request.node.name}-{len(names)}"
        names.append(name)
        ch = channel(services.start_router(name, **overrides), credentials)
        channels.append(ch)
        return Stub(router_pb2_grpc.RouterServiceStub(ch), services.servers[name].port)

    yield start
    for ch in channels:
        ch.close()
    for name in names:
        services.servers.pop(name).stop(0)


def won_deal(lead_id: int, utm_source: str) -> deal_pb2.Deal:
    fields = [deal_pb2.CustomField(code="UTM_SOURCE",
                                   values=[deal_pb2.CustomFieldValue(value=utm_source)])]
    return deal_pb2.Deal(lead_id=lead_id, account_id=32145678, status_id=142,
                         pipeline_id=10418746, price=1000, custom_fields=fields)


def refused(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


def test_the_rules_file_seeds_an_empty_database_once(
    router: Callable[..., Stub], services: Services, tmp_path: Path
) -> None:
    url = services.router_database()
    first = router(router_database_url=url)
    seeded = first.current()
    assert (seeded.version, seeded.yaml, seeded.author) == (1, SHIPPED, "file")
    assert str(DEFAULT_RULES_PATH) in seeded.comment
    assert '"pipelines":[10418746]' in seeded.json.replace(" ", "")
    assert first.update(WITH_PROMO, expected=1) == 2
    # A replica started later with another file finds versions stored: the file is not read.
    other_file = tmp_path / "rules.yaml"
    other_file.write_text(SHIPPED.replace("10418746", "777"), encoding="utf-8")
    second = router(router_database_url=url, routing_rules=str(other_file))
    assert second.current().version == 2 and second.current().yaml == WITH_PROMO
    assert second.versions() == [2, 1]
    described = second.rpc.DescribeRules(D.DescribeRulesRequest())
    assert (described.version, list(described.pipeline_ids), described.path) == (2, [10418746], "")


def test_replicas_starting_together_on_an_empty_database_seed_one_version(
    router: Callable[..., Stub], services: Services
) -> None:
    url = services.router_database()
    started: list[Stub] = []
    threads = [threading.Thread(target=lambda: started.append(router(router_database_url=url)))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(started) == 3
    assert [stub.versions() for stub in started] == [[1], [1], [1]]


def test_an_update_is_what_get_rules_shows_and_is_in_force_at_once(
    router: Callable[..., Stub],
) -> None:
    stub = router()
    assert stub.decision("promo_june") == "ROUTING_DECISION_UNKNOWN"
    reply = stub.rpc.UpdateRules(D.UpdateRulesRequest(
        yaml=WITH_PROMO, expected_version=1, author="Dana", comment=" promo for June "))
    assert (reply.version.version, reply.version.author, reply.version.comment) == (
        2, "Dana", "promo for June")
    current = stub.current()
    assert (current.version, current.yaml, current.author) == (2, WITH_PROMO, "Dana")
    assert current.created_at.seconds >= reply.version.created_at.seconds > 0
    assert '"promo_*"' in current.json
    # The replica that stored it routes by it straight away.
    assert stub.decision("promo_june") == "ROUTING_DECISION_TRAFFIC"


def test_an_update_without_an_author_is_signed_by_the_authenticated_caller(
    router: Callable[..., Stub],
) -> None:
    tokens = ",".join(f"{caller}:{token}" for caller, token in TOKENS.items())
    as_edge = router(CallerCredentials(token=TOKENS[EDGE]), grpc_auth_tokens=tokens)
    as_edge.update(WITH_PROMO, expected=1, author="")
    assert as_edge.current().author == "edge"
    # With authentication off nobody is known: the operator, the person with grpcurl.
    anonymous = router()
    anonymous.update(WITH_PROMO, expected=1, author="  ")
    assert anonymous.current().author == "operator"


def test_a_bad_document_is_refused_naming_the_key_and_nothing_is_stored(
    router: Callable[..., Stub],
) -> None:
    stub = router()
    error = refused(lambda: stub.update(BAD_PATTERN + "colour: blue\n", expected=1))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(
        "yaml: traffic.targetologists[1].patterns[0]: must be a non-empty string")
    assert "colour: unknown key" in error.details()  # every problem, not the first only
    for text in ("", "pipelines: [1\n", "- a list\n"):
        assert refused(lambda t=text: stub.update(t, expected=1)).code() == (
            grpc.StatusCode.INVALID_ARGUMENT)
    assert stub.versions() == [1]
    assert stub.current().yaml == SHIPPED


def test_out_of_range_fields_are_invalid_arguments_naming_them(
    router: Callable[..., Stub],
) -> None:
    stub = router()
    for request, field in [
        (D.UpdateRulesRequest(yaml=WITH_PROMO, expected_version=-1), "expected_version"),
        (D.UpdateRulesRequest(yaml=WITH_PROMO, expected_version=1, author="x" * 201), "author"),
        (D.UpdateRulesRequest(yaml=WITH_PROMO, expected_version=1, comment="x" * 2001),
         "comment"),
        (D.UpdateRulesRequest(yaml=WITH_PROMO + "#" * 300_000, expected_version=1), "yaml"),
    ]:
        error = refused(lambda r=request: stub.rpc.UpdateRules(r))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details().startswith(f"{field}: ")
    assert stub.versions() == [1]


def test_two_editors_from_the_same_version_one_wins_the_other_is_aborted(
    router: Callable[..., Stub], services: Services
) -> None:
    url = services.router_database()
    # Editors on two replicas of one database: the database decides, not a process.
    replicas = [router(router_database_url=url), router(router_database_url=url)]
    stub = replicas[0]
    stub.update(WITH_PROMO, expected=1)
    editors = 4
    start = threading.Barrier(editors)
    outcomes: list[object] = [None] * editors

    def edit(i: int) -> None:
        start.wait()
        try:
            outcomes[i] = replicas[i % 2].update(
                WITH_PROMO.replace("promo_*", f"promo{i}_*"), expected=2, author=f"editor {i}")
        except grpc.RpcError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=edit, args=(i,)) for i in range(editors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [o for o in outcomes if not isinstance(o, grpc.RpcError)] == [3]
    losers = [o for o in outcomes if isinstance(o, grpc.RpcError)]
    assert len(losers) == editors - 1
    for error in losers:
        assert error.code() == grpc.StatusCode.ABORTED
        assert error.details() == (
            "rules are at version 3, the edit started from version 2; reload and reapply")
    assert stub.versions() == [3, 2, 1]
    winner = outcomes.index(3)
    assert stub.current().author == f"editor {winner}"


def test_an_edit_from_a_version_not_yet_stored_is_aborted_leaving_no_gap(
    router: Callable[..., Stub],
) -> None:
    stub = router()
    error = refused(lambda: stub.update(WITH_PROMO, expected=7))
    assert error.code() == grpc.StatusCode.ABORTED
    assert "rules are at version 1, the edit started from version 7" in error.details()
    assert stub.versions() == [1]


def test_another_replica_routes_by_a_new_version_within_two_seconds(
    router: Callable[..., Stub], services: Services
) -> None:
    url = services.router_database()
    editor = router(router_database_url=url)
    replica = router(router_database_url=url)
    traffic = traffic_pb2_grpc.TrafficServiceStub(channel(services.addr("traffic")))
    lead_id = 77001
    deal = won_deal(lead_id, "promo_replica")
    assert replica.rpc.RouteDeal(D.RouteDealRequest(deal=deal)).route.decision == (
        D.ROUTING_DECISION_UNKNOWN)
    editor.update(WITH_PROMO, expected=1)
    stored_at = time.monotonic()

    def routed_as_traffic() -> float | None:
        reply = replica.rpc.RouteDeal(D.RouteDealRequest(deal=deal))
        elapsed = time.monotonic() - stored_at
        return elapsed if reply.route.decision == D.ROUTING_DECISION_TRAFFIC else None

    elapsed = eventually(routed_as_traffic, timeout=2.0)
    assert elapsed is not None, "the replica did not route by the new version within 2 s"
    sales = traffic.ListSales(traffic_pb2.ListSalesRequest(lead_id=lead_id)).sales
    assert [(s.lead_id, s.targetologist) for s in sales] == [(lead_id, "Aidana")]
    assert replica.rpc.DescribeRules(D.DescribeRulesRequest()).version == 2


def test_rules_kept_in_a_file_are_read_only_and_reloaded_when_it_changes(
    router: Callable[..., Stub], tmp_path: Path
) -> None:
    rules_file = tmp_path / "routing_rules.yaml"
    rules_file.write_text(SHIPPED, encoding="utf-8")
    stub = router(routing_rules_source="file", routing_rules=str(rules_file))
    reply = stub.rpc.GetRules(D.GetRulesRequest())
    assert reply.source == D.RULES_SOURCE_FILE and reply.path == str(rules_file)
    assert (reply.current.version, reply.current.yaml) == (0, SHIPPED)
    error = refused(lambda: stub.update(WITH_PROMO, expected=0))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"managed in the file {rules_file} (ROUTING_RULES_SOURCE=file)" in error.details()
    assert stub.versions() == []
    described = stub.rpc.DescribeRules(D.DescribeRulesRequest())
    assert (described.version, described.path) == (0, str(rules_file))

    rules_file.write_text(WITH_PROMO, encoding="utf-8")
    assert eventually(lambda: stub.decision("promo_file") == "ROUTING_DECISION_TRAFFIC", 5)
    assert stub.current().yaml == WITH_PROMO


def test_versions_are_listed_newest_first_in_pages_with_their_diffs(
    router: Callable[..., Stub],
) -> None:
    stub = router()
    texts = [SHIPPED, WITH_PROMO]
    texts.append(WITH_PROMO.replace('prefix: "ref_"', 'prefix: "r_"'))
    texts.append(texts[-1].replace("won_status_ids: [142]", "won_status_ids: [142, 143]"))
    for version, text in enumerate(texts[1:], start=1):
        stub.update(text, expected=version, comment=f"change {version}")

    first = stub.rpc.ListRulesVersions(D.ListRulesVersionsRequest(page_size=3))
    assert [v.version for v in first.versions] == [4, 3, 2] and first.next_page_token
    second = stub.rpc.ListRulesVersions(
        D.ListRulesVersionsRequest(page_size=3, page_token=first.next_page_token))
    assert [v.version for v in second.versions] == [1] and second.next_page_token == ""

    by_version = {v.version: v for v in [*first.versions, *second.versions]}
    assert by_version[3].comment == "change 2" and by_version[3].yaml == texts[2]
    diff = by_version[3].diff_to_previous.splitlines()
    assert diff[:2] == ["--- version 2", "+++ version 3"]
    assert '-  prefix: "ref_"' in diff and '+  prefix: "r_"' in diff
    # The oldest on a page still gets its diff against the version before it.
    assert by_version[2].diff_to_previous.startswith("--- version 1\n+++ version 2\n")
    assert '+      patterns: ["aidana_*", "promo_*"]' in by_version[2].diff_to_previous
    # The first version shows the whole document as added.
    added = by_version[1].diff_to_previous.splitlines()
    assert added[:2] == ["--- version 0", "+++ version 1"]
    assert added[3:] == [f"+{line}" for line in SHIPPED.splitlines()]

    for request, field in [
        (D.ListRulesVersionsRequest(page_token="bogus"), "page_token"),
        (D.ListRulesVersionsRequest(page_size=-1), "page_size"),
    ]:
        error = refused(lambda r=request: stub.rpc.ListRulesVersions(r))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details().startswith(f"{field}: ")


def test_explain_route_under_candidate_rules_decides_by_them_and_stores_nothing(
    router: Callable[..., Stub], services: Services
) -> None:
    stub = router()
    traffic = traffic_pb2_grpc.TrafficServiceStub(channel(services.addr("traffic")))
    reply = stub.rpc.ExplainRoute(D.ExplainRouteRequest(
        deal=won_deal(77002, "promo_whatif"), candidate_rules_yaml=WITH_PROMO))
    assert reply.route.decision == D.ROUTING_DECISION_TRAFFIC
    assert reply.route.targetologist == "Aidana"
    # The rules in force are unchanged, and nothing was stored anywhere.
    assert stub.decision("promo_whatif") == "ROUTING_DECISION_UNKNOWN"
    assert stub.versions() == [1]
    assert list(traffic.ListSales(traffic_pb2.ListSalesRequest(lead_id=77002)).sales) == []


def test_bad_candidate_rules_are_an_invalid_argument_naming_the_key(
    router: Callable[..., Stub],
) -> None:
    stub = router()
    bad = SHIPPED.replace("fields: [utm_source, utm_campaign]", "fields: [utm_nowhere]")
    error = refused(lambda: stub.decision("kenesary_x", candidate=bad))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("candidate_rules_yaml: traffic.fields[0]: must be one of")
    error = refused(lambda: stub.decision("kenesary_x", candidate=BAD_PATTERN))
    assert error.details().startswith(
        "candidate_rules_yaml: traffic.targetologists[1].patterns[0]: ")
    assert stub.decision("kenesary_x") == "ROUTING_DECISION_TRAFFIC"


def test_while_the_database_is_unreachable_the_rules_in_force_stay_and_it_is_logged_once(
    router: Callable[..., Stub], services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    url = sa.engine.make_url(services.router_database())
    if url.get_backend_name() != "postgresql":
        pytest.skip("the outage is simulated on a PostgreSQL connection")
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
        editor = router(router_database_url=proxied)
        editor.update(WITH_PROMO, expected=1)
        assert editor.decision("promo_outage") == "ROUTING_DECISION_TRAFFIC"
        proxy.cut()
        with caplog.at_level(logging.ERROR, logger="router_svc.rules_versions"):

            def outage_logged() -> list[logging.LogRecord]:
                # Deals are still decided, by the version in force, while the look fails.
                assert editor.decision("promo_outage") == "ROUTING_DECISION_TRAFFIC"
                return [r for r in caplog.records if "unreachable" in r.getMessage()]

            assert eventually(outage_logged, timeout=5)
            # A few more looks (one a second) fail, and say nothing more.
            looks_until = time.monotonic() + 2.5
            while time.monotonic() < looks_until:
                assert editor.decision("promo_outage") == "ROUTING_DECISION_TRAFFIC"
                time.sleep(0.1)
            assert len(outage_logged()) == 1
            assert "keeping version 2" in outage_logged()[0].getMessage()
        error = refused(lambda: editor.current())
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert "rules database is unreachable" in error.details()
        proxy.restore()
        editor.update(SHIPPED, expected=2)
        assert eventually(lambda: editor.decision("promo_outage") == "ROUTING_DECISION_UNKNOWN")
    finally:
        proxy.close()
