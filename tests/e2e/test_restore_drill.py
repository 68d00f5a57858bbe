"""deploy/restore-drill.sh against a running stack on PostgreSQL: every database dumped,
dropped and restored, the dashboards' totals unchanged, and the stack still crediting."""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from amoroute.channels import channel
from amoroute.v1 import referral_pb2, referral_pb2_grpc, traffic_pb2, traffic_pb2_grpc
from tests.support.databases import backend
from tests.support.forms import encode, won_deal_body
from tests.support.stack import RunningStack, start_stack
from tests.support.waiting import eventually

pytestmark = pytest.mark.skipif(
    backend() != "postgresql", reason="the drill dumps and restores PostgreSQL databases"
)

REPO = Path(__file__).resolve().parents[2]
ADMIN = "restore-drill-admin-token-0123456789abcdef"
SERVICES = ("edge", "router", "referral", "traffic", "notifier")


@pytest.fixture(scope="module")
def running(make_database, tmp_path_factory) -> Iterator[RunningStack]:  # type: ignore[no-untyped-def]
    stack = start_stack(
        {name: make_database(name) for name in SERVICES},
        tmp_path_factory.mktemp("stack"),
        ADMIN_TOKEN=ADMIN,
    )
    try:
        yield stack
    finally:
        stack.stack.stop()


def post(running: RunningStack, *deals: dict[str, str]) -> None:
    for deal in deals:
        answer = httpx.post(
            f"{running.edge_url}/webhook/amocrm",
            content=encode(deal),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert answer.status_code == 200, answer.text


def credited(running: RunningStack, traffic_leads: set[int], referral_leads: set[int]) -> bool:
    with channel(running.addr("traffic"), running.operator) as ch:
        sales = traffic_pb2_grpc.TrafficServiceStub(ch).ListSales(traffic_pb2.ListSalesRequest())
    with channel(running.addr("referral"), running.operator) as ch:
        conversions = referral_pb2_grpc.ReferralServiceStub(ch).ListConversions(
            referral_pb2.ListConversionsRequest()
        )
    return traffic_leads <= {s.lead_id for s in sales.sales} and referral_leads <= {
        c.lead_id for c in conversions.conversions
    }


def test_the_drill_restores_every_database_with_the_totals_unchanged(
    running: RunningStack, tmp_path: Path
) -> None:
    post(
        running,
        won_deal_body(7700001, "kenesary_fb", price=120000),
        won_deal_body(7700002, "kenesary_ig", price=80000),
        won_deal_body(7700003, "ref_PARTNER7", price=50000),
        won_deal_body(7700004, "ref_PARTNER7", "kenesary_june", price=30000),
    )
    assert eventually(lambda: credited(running, {7700001, 7700002, 7700004}, {7700003, 7700004}),
                      timeout=30)
    env = {
        **os.environ,
        "EDGE_URL": running.edge_url,
        "ADMIN_TOKEN": ADMIN,
        **{f"{n.upper()}_DATABASE_URL": running.env[f"{n.upper()}_DATABASE_URL"] for n in SERVICES},
    }

    drill = subprocess.run(
        [str(REPO / "deploy" / "restore-drill.sh"), str(tmp_path / "dumps")],
        env=env, capture_output=True, text=True, timeout=300,
    )

    assert drill.returncode == 0, drill.stdout + drill.stderr
    assert "restore drill passed" in drill.stdout
    before = drill.stdout.split("== totals before")[1].split("== dump")[0]
    assert '"targetologist": "Kenesary"' in before and '"revenue": 230000' in before
    assert "PARTNER7" in before
    assert sorted(p.name for p in (tmp_path / "dumps").iterdir()) == sorted(
        f"{n}.dump" for n in SERVICES
    )
    # The processes kept running through the restore and go on crediting.
    post(running, won_deal_body(7700005, "kenesary_fb", price=10000))
    assert eventually(lambda: credited(running, {7700005}, set()), timeout=30)
