"""The routing rules admin API through real services: the edge app in-process, calling a
real RouterService (its rules in its own database, or in a file with
ROUTING_RULES_SOURCE=file) with gRPC caller authentication on, as deployed."""

from collections.abc import Iterator
from dataclasses import dataclass

import falcon.testing
import pytest

from amoroute.callers import OPERATOR, CallerCredentials
from amoroute.channels import channel
from amoroute.v1 import deal_pb2, router_pb2, router_pb2_grpc
from router_svc.rules import DEFAULT_RULES_PATH
from tests.admin.helpers import AUTH, TOKEN, admin_client, migrated_edge_database
from tests.support.services import start_services
from tests.support.stack import TOKENS
from tests.support.waiting import eventually

ALICE = "alice-token-0123456789abcdef0123456789"
BOB = "bob-token-fedcba9876543210fedcba98765"
SHIPPED = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
GRPC_TOKENS = ",".join(f"{caller}:{token}" for caller, token in TOKENS.items())
JSON = {"Content-Type": "application/json"}


def as_admin(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **JSON}


def with_targetologist(yaml_text: str, name: str, pattern: str) -> str:
    """The rules document with one more targetologist, appended as an editor would type it."""
    return yaml_text.replace(
        "    - name: Aidana\n",
        f'    - name: {name}\n      patterns: ["{pattern}"]\n    - name: Aidana\n',
    )


@dataclass
class Edge:
    client: falcon.testing.TestClient
    router: router_pb2_grpc.RouterServiceStub

    def rules(self) -> dict:
        reply = self.client.simulate_get("/api/admin/rules", headers=AUTH)
        assert reply.status_code == 200, reply.text
        return reply.json

    def put(self, token: str, **body: object) -> falcon.testing.Result:
        return self.client.simulate_put("/api/admin/rules", json=body, headers=as_admin(token))

    def versions(self, **params: object) -> dict:
        reply = self.client.simulate_get("/api/admin/rules/versions", params=params,
                                         headers=AUTH)
        assert reply.status_code == 200, reply.text
        return reply.json

    def decision(self, utm_source: str) -> str:
        deal = deal_pb2.Deal(lead_id=1, status_id=142, pipeline_id=10418746, custom_fields=[
            deal_pb2.CustomField(code="UTM_SOURCE", values=[deal_pb2.CustomFieldValue(
                value=utm_source)])])
        reply = self.router.ExplainRoute(router_pb2.ExplainRouteRequest(deal=deal), timeout=5)
        return router_pb2.RoutingDecision.Name(reply.route.decision)


@pytest.fixture(scope="module")
def stacks(make_database, tmp_path_factory) -> Iterator[dict[str, Edge]]:  # type: ignore[no-untyped-def]
    """Two routers, one with its rules in its database and one with ROUTING_RULES_SOURCE=
    file, each behind its own edge."""
    services = start_services(make_database, common={"grpc_auth_tokens": GRPC_TOKENS})
    rules_file = tmp_path_factory.mktemp("rules") / "routing_rules.yaml"
    rules_file.write_text(SHIPPED, encoding="utf-8")
    routers = {
        "database": services.start_router("router", routing_rules=str(rules_file)),
        "file": services.start_router("file_router", routing_rules=str(rules_file),
                                      routing_rules_source="file"),
    }
    database = migrated_edge_database(make_database)
    channels = []
    edges = {}
    for source, address in routers.items():
        ch = channel(address, CallerCredentials(token=TOKENS[OPERATOR]))
        channels.append(ch)
        edges[source] = Edge(
            admin_client(database, router_addr=address, grpc_auth_tokens=GRPC_TOKENS,
                         admin_tokens=f"alice:{ALICE},bob:{BOB}"),
            router_pb2_grpc.RouterServiceStub(ch),
        )
    yield edges
    for ch in channels:
        ch.close()
    services.stop()


@pytest.fixture
def edge(stacks: dict[str, Edge]) -> Edge:
    return stacks["database"]


def test_the_rules_in_force_are_the_seeded_file_as_version_1(edge: Edge) -> None:
    current = edge.rules()
    assert current["version"] >= 1
    first = edge.versions()["items"][-1]
    assert (first["version"], first["author"], first["yaml"]) == (1, "file", SHIPPED)
    assert current["source"] == "database"
    assert current["read_only"] is False and current["read_only_reason"] is None
    assert [t["name"] for t in first["rules"]["traffic"]["targetologists"]] == [
        "Kenesary", "Aidana"]
    assert first["created_at"].endswith("+00:00")
    assert first["diff"].startswith("---") and "+pipelines: [10418746]" in first["diff"]


def test_an_edit_is_stored_as_the_next_version_by_the_signed_in_admin_and_applied(
    edge: Edge
) -> None:
    current = edge.rules()
    assert edge.decision("zarina_fb") == "ROUTING_DECISION_UNKNOWN"
    edited = with_targetologist(current["yaml"], "Zarina", "zarina_*")
    reply = edge.put(ALICE, yaml=edited, expected_version=current["version"],
                     comment="Zarina joins the traffic team")
    assert reply.status_code == 200, reply.text
    stored = reply.json
    assert stored["version"] == current["version"] + 1
    assert (stored["author"], stored["comment"], stored["yaml"]) == (
        "alice", "Zarina joins the traffic team", edited)
    assert "Zarina" in [t["name"] for t in stored["rules"]["traffic"]["targetologists"]]
    assert edge.rules()["version"] == stored["version"]
    # The router applies it: a deal of Zarina's is credited to her.
    assert eventually(lambda: edge.decision("zarina_fb") == "ROUTING_DECISION_TRAFFIC")
    [newest, *_] = edge.versions()["items"]
    assert (newest["version"], newest["author"]) == (stored["version"], "alice")
    assert '+    - name: Zarina\n+      patterns: ["zarina_*"]' in newest["diff"]


def test_two_editors_from_the_same_version_one_wins_the_other_gets_409(edge: Edge) -> None:
    start = edge.rules()
    alice = edge.put(ALICE, yaml=with_targetologist(start["yaml"], "Dana", "dana_*"),
                     expected_version=start["version"], comment="Dana")
    bob = edge.put(BOB, yaml=with_targetologist(start["yaml"], "Erlan", "erlan_*"),
                   expected_version=start["version"], comment="Erlan")
    assert alice.status_code == 200, alice.text
    assert bob.status_code == 409, bob.text
    saved = alice.json["version"]
    assert str(start["version"]) in bob.json["description"]
    assert str(saved) in bob.json["description"]
    assert (bob.json["current_version"], bob.json["current_author"]) == (saved, "alice")
    # Nothing of Bob's was stored.
    assert edge.rules()["version"] == saved
    assert "Erlan" not in edge.rules()["yaml"]


def test_rules_that_do_not_validate_get_400_naming_the_key_and_nothing_is_stored(
    edge: Edge
) -> None:
    start = edge.rules()
    # Aidana, the second targetologist, with a number for a pattern.
    broken = SHIPPED.replace('patterns: ["aidana_*"]', "patterns: [7]")
    assert broken != SHIPPED
    reply = edge.put(ALICE, yaml=broken, expected_version=start["version"])
    assert reply.status_code == 400, reply.text
    assert "traffic.targetologists[1].patterns[0]" in reply.json["description"]
    for text in ("pipelines: [10418746\n", "pipelines: [0]", ""):
        reply = edge.put(ALICE, yaml=text, expected_version=start["version"])
        assert reply.status_code == 400, (text, reply.text)
        assert "yaml" in reply.json["description"]
    assert edge.rules()["version"] == start["version"]


@pytest.mark.parametrize(("body", "named"), [
    ({"expected_version": 1}, "yaml: is required"),
    ({"yaml": 12, "expected_version": 1}, "yaml: must be a string"),
    ({"yaml": "x"}, "expected_version: must be an integer"),
    ({"yaml": "x", "expected_version": "1"}, "expected_version: must be an integer"),
    ({"yaml": "x", "expected_version": 1.5}, "expected_version: must be an integer"),
    ({"yaml": "x", "expected_version": True}, "expected_version: must be an integer"),
    ({"yaml": "x", "expected_version": -1}, "expected_version: must be an integer from 0"),
    ({"yaml": "x", "expected_version": 2**63}, "expected_version: must be an integer from 0"),
    ({"yaml": "x", "expected_version": 1, "comment": ["a"]}, "comment: must be a string"),
    ({"yaml": "x", "expected_version": 1, "comment": "c" * 2001}, "comment: must be at most"),
    ({"yaml": "a\x00b", "expected_version": 1}, "yaml: must not contain NUL"),
    ({"yaml": "x", "expected_version": 1, "author": "mallory"}, "author: unknown field"),
    ([1, 2], "body: must be a JSON object"),
])
def test_a_bad_body_gets_400_naming_the_field(edge: Edge, body: object, named: str) -> None:
    reply = edge.client.simulate_put("/api/admin/rules", json=body, headers=as_admin(ALICE))
    assert reply.status_code == 400, reply.text
    assert reply.json["description"].startswith(named)


@pytest.mark.parametrize(("raw", "status"), [
    (b"", 400), (b"{not json", 400), (b'{"yaml": "\\ud800", "expected_version": 1}', 400),
    (b"\xff\xfe", 400), (b"[" * 100_000, 400),
])
def test_a_body_that_is_not_json_gets_400(edge: Edge, raw: bytes, status: int) -> None:
    reply = edge.client.simulate_put("/api/admin/rules", body=raw, headers=as_admin(ALICE))
    assert reply.status_code == status, reply.text


def test_a_body_of_another_type_or_too_large_is_refused(edge: Edge) -> None:
    form = edge.client.simulate_put("/api/admin/rules", body="yaml=x", headers={
        **as_admin(ALICE), "Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    huge = edge.client.simulate_put("/api/admin/rules", body=b"{" + b" " * 2_000_000 + b"}",
                                    headers=as_admin(ALICE))
    assert huge.status_code == 413


def test_every_rules_operation_needs_an_admin_token(edge: Edge) -> None:
    current = edge.rules()
    for method, path in (("GET", "/api/admin/rules"), ("PUT", "/api/admin/rules"),
                         ("GET", "/api/admin/rules/versions")):
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            reply = edge.client.simulate_request(
                method, path, headers={**headers, **JSON},
                json={"yaml": SHIPPED, "expected_version": current["version"]}
                if method == "PUT" else None)
            assert reply.status_code == 401, (method, path, headers)
            assert "yaml" not in reply.text
    assert edge.rules()["version"] == current["version"]


def test_admin_token_edits_as_the_admin_named_admin(edge: Edge) -> None:
    current = edge.rules()
    reply = edge.put(TOKEN, yaml=current["yaml"] + "\n# reviewed\n",
                     expected_version=current["version"])
    assert reply.status_code == 200, reply.text
    assert reply.json["author"] == "admin" and reply.json["comment"] == ""


def test_versions_page_newest_first(edge: Edge) -> None:
    everything = edge.versions(page_size=100)["items"]
    numbers = [v["version"] for v in everything]
    assert numbers == sorted(numbers, reverse=True) and numbers[-1] == 1
    assert len(numbers) >= 3
    first = edge.versions(page_size=2)
    assert [v["version"] for v in first["items"]] == numbers[:2]
    assert first["next_page_token"]
    second = edge.versions(page_size=2, page_token=first["next_page_token"])
    assert [v["version"] for v in second["items"]] == numbers[2:4]
    # Each diff is against the version before, also across a page's edge.
    assert second["items"][0]["diff"] == everything[2]["diff"]
    last = edge.versions(page_size=100)
    assert last["next_page_token"] is None


@pytest.mark.parametrize(("params", "named"), [
    ({"page_size": 0}, "page_size"), ({"page_size": 101}, "page_size"),
    ({"page_size": "x"}, "page_size"), ({"page_token": "nonsense"}, "page_token"),
    ({"limit": 5}, "limit"),
])
def test_bad_paging_gets_400_naming_the_parameter(edge: Edge, params: dict, named: str) -> None:
    reply = edge.client.simulate_get("/api/admin/rules/versions", params=params, headers=AUTH)
    assert reply.status_code == 400, reply.text
    assert named in reply.json["description"]


# --- ROUTING_RULES_SOURCE=file -------------------------------------------------------------


def test_in_file_mode_the_rules_are_read_only_and_say_why(stacks: dict[str, Edge]) -> None:
    edge = stacks["file"]
    current = edge.rules()
    assert (current["source"], current["version"], current["read_only"]) == ("file", 0, True)
    assert current["path"].endswith("routing_rules.yaml")
    assert "ROUTING_RULES_SOURCE=file" in current["read_only_reason"]
    assert current["path"] in current["read_only_reason"]
    assert current["yaml"] == SHIPPED
    reply = edge.put(ALICE, yaml=with_targetologist(SHIPPED, "Zarina", "zarina_*"),
                     expected_version=0)
    assert reply.status_code == 403, reply.text
    assert "ROUTING_RULES_SOURCE" in reply.json["description"]
    assert edge.versions()["items"] == []
    assert edge.decision("zarina_fb") == "ROUTING_DECISION_UNKNOWN"


# --- the router down -----------------------------------------------------------------------


def test_without_the_router_each_operation_is_503_with_retry_after(make_database) -> None:  # type: ignore[no-untyped-def]
    client = admin_client(migrated_edge_database(make_database), router_addr="127.0.0.1:9")
    for method, path in (("GET", "/api/admin/rules"), ("PUT", "/api/admin/rules"),
                         ("GET", "/api/admin/rules/versions")):
        reply = client.simulate_request(method, path, headers={**AUTH, **JSON},
                                        json={"yaml": SHIPPED, "expected_version": 1}
                                        if method == "PUT" else None)
        assert reply.status_code == 503, (method, reply.text)
        assert int(reply.headers["Retry-After"]) > 0
        assert "router_svc at 127.0.0.1:9 did not answer" in reply.json["description"]
