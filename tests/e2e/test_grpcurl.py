"""An operator's grpcurl session against the running stack, through reflection."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from amoroute.callers import OPERATOR
from tests.support.stack import TOKENS

GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).with_name("grpcurl"))
AS_OPERATOR = ("-H", f"authorization: Bearer {TOKENS[OPERATOR]}")


def grpcurl(*args: str) -> str:
    """grpcurl as the operator (the stack runs with GRPC_AUTH_TOKENS set)."""
    done = subprocess.run(
        [GRPCURL, "-plaintext", *AS_OPERATOR, *args], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("name", ["router", "referral", "traffic", "notifier"])
def test_every_service_lists_itself_health_and_reflection(e2e, name: str) -> None:  # type: ignore[no-untyped-def]
    services = grpcurl(e2e.running.addr(name), "list").split()
    assert f"amoroute.v1.{name.capitalize()}Service" in services
    assert "grpc.health.v1.Health" in services
    health = json.loads(grpcurl(e2e.running.addr(name), "grpc.health.v1.Health/Check"))
    assert health["status"] == "SERVING"


def test_describe_shows_the_router_methods(e2e) -> None:  # type: ignore[no-untyped-def]
    described = grpcurl(e2e.running.addr("router"), "describe", "amoroute.v1.RouterService")
    assert "rpc RouteDeal" in described and "rpc ExplainRoute" in described


def test_explain_route_through_reflection_writes_nothing(e2e) -> None:  # type: ignore[no-untyped-def]
    request = {"deal": {"leadId": "777001", "statusId": "142", "pipelineId": "10418746",
                        "customFields": [{"code": "UTM_SOURCE", "values": [{"value": "kenesary_fb"}]}]}}
    out = json.loads(grpcurl("-d", json.dumps(request), e2e.running.addr("router"),
                             "amoroute.v1.RouterService/ExplainRoute"))
    assert out["route"]["decision"] == "ROUTING_DECISION_TRAFFIC"
    assert out["route"]["targetologist"] == "Kenesary"
    listed = json.loads(grpcurl("-d", '{"leadId": "777001"}', e2e.running.addr("traffic"),
                                "amoroute.v1.TrafficService/ListSales"))
    assert listed.get("sales", []) == []


def test_route_deal_through_reflection_credits_the_referral(e2e) -> None:  # type: ignore[no-untyped-def]
    request = {"deal": {"leadId": "777002", "accountId": "32145678", "statusId": "142",
                        "pipelineId": "10418746", "price": "5000",
                        "customFields": [{"name": "UTM Source",
                                          "values": [{"value": "ref_GRPCURL1"}]}]}}
    out = json.loads(grpcurl("-d", json.dumps(request), e2e.running.addr("router"),
                             "amoroute.v1.RouterService/RouteDeal"))
    assert out["route"]["decision"] == "ROUTING_DECISION_REFERRAL"
    assert out["status"] == "PROCESSING_STATUS_SUCCESS"
    assert out["legs"] == [{"leg": "referral", "outcome": "LEG_OUTCOME_RECORDED"}]


@pytest.mark.parametrize("name", ["router", "traffic"])
def test_list_describe_and_health_need_no_token(e2e, name: str) -> None:  # type: ignore[no-untyped-def]
    for args in (["list"], ["describe", "grpc.health.v1.Health"], ["grpc.health.v1.Health/Check"]):
        done = subprocess.run([GRPCURL, "-plaintext", e2e.running.addr(name), *args],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr


def test_a_method_without_the_token_header_is_unauthenticated(e2e) -> None:  # type: ignore[no-untyped-def]
    for header in ([], ["-H", "authorization: Bearer wrong-token"]):
        done = subprocess.run(
            [GRPCURL, "-plaintext", *header, "-d", "{}", e2e.running.addr("traffic"),
             "amoroute.v1.TrafficService/ListSales"],
            capture_output=True, text=True, timeout=30,
        )
        assert done.returncode != 0 and "Unauthenticated" in done.stderr, done.stderr


def test_the_operator_may_not_record_a_sale_directly(e2e) -> None:  # type: ignore[no-untyped-def]
    request = {"sale": {"leadId": "777009", "accountId": "1", "amount": "1000000000000000"}}
    done = subprocess.run(
        [GRPCURL, "-plaintext", *AS_OPERATOR, "-d", json.dumps(request),
         e2e.running.addr("traffic"), "amoroute.v1.TrafficService/RecordSale"],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode != 0 and "PermissionDenied" in done.stderr, done.stderr
    assert "caller operator may not call /amoroute.v1.TrafficService/RecordSale" in done.stderr


def test_bad_field_is_invalid_argument_naming_it(e2e) -> None:  # type: ignore[no-untyped-def]
    done = subprocess.run(
        [GRPCURL, "-plaintext", *AS_OPERATOR, "-d", '{"deal": {"leadId": "0"}}', e2e.running.addr("router"),
         "amoroute.v1.RouterService/RouteDeal"],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode != 0
    assert "InvalidArgument" in done.stderr and "deal.lead_id" in done.stderr


def readme_grpcurl_lines() -> list[str]:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text.split("## Debugging with grpcurl", 1)[1]
    return [line for line in section.splitlines() if line.startswith("grpcurl ")]


def test_readme_grpcurl_lines_work_as_printed(e2e) -> None:  # type: ignore[no-untyped-def]
    import shlex

    lines = readme_grpcurl_lines()
    assert len(lines) >= 6
    ports = {"50051": "router", "50052": "referral", "50053": "traffic", "50054": "notifier"}
    assert all("authorization: Bearer $OPERATOR_TOKEN" in line for line in lines if " -d " in line)
    for line in lines:
        # As in a shell with OPERATOR_TOKEN exported.
        args = [a.replace("$OPERATOR_TOKEN", TOKENS[OPERATOR]) for a in shlex.split(line)[1:]]
        args = [
            e2e.running.addr(ports[a.split(":")[1]]) if a.startswith("localhost:5005") else a
            for a in args
        ]
        out = subprocess.run([GRPCURL, *args], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, f"{line}\n{out.stderr}"
