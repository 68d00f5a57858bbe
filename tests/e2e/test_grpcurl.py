"""An operator's grpcurl session against the running stack, through reflection."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).with_name("grpcurl"))


def grpcurl(*args: str) -> str:
    done = subprocess.run(
        [GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=30
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


def test_bad_field_is_invalid_argument_naming_it(e2e) -> None:  # type: ignore[no-untyped-def]
    done = subprocess.run(
        [GRPCURL, "-plaintext", "-d", '{"deal": {"leadId": "0"}}', e2e.running.addr("router"),
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
    for line in lines:
        args = shlex.split(line)[1:]
        args = [
            e2e.running.addr(ports[a.split(":")[1]]) if a.startswith("localhost:5005") else a
            for a in args
        ]
        out = subprocess.run([GRPCURL, *args], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, f"{line}\n{out.stderr}"
