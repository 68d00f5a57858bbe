"""Wiring: rules file, downstream channels, gRPC server."""

from concurrent.futures import ThreadPoolExecutor

from amoroute.callers import EDGE, OPERATOR, ROUTER
from amoroute.channels import channel
from amoroute.grpc_server import Registration, RunningServer, start_server
from amoroute.v1 import router_pb2, router_pb2_grpc
from router_svc.rules import RulesFile
from router_svc.service import Downstream, RouterService
from router_svc.settings import Settings

# Who may call each method (amoroute/grpc_auth.py). The edge routes webhooks and
# replays and reads the rules for its admin pages; the operator may do the same by hand.
CALLERS = {
    "RouteDeal": (EDGE, OPERATOR),
    "BatchRouteDeals": (EDGE, OPERATOR),
    "ExplainRoute": (EDGE, OPERATOR),
    "DescribeRules": (EDGE, OPERATOR),
    "SuggestOwners": (EDGE, OPERATOR),
}


def build(settings: Settings, port: int | None = None) -> RunningServer:
    """Start RouterService on `port` (settings' port when None; 0 = any free port)."""
    rules = RulesFile(settings.routing_rules)  # bad rules stop the start here
    calls_as = settings.caller_credentials(ROUTER)
    downstream = Downstream(
        channel(settings.referral_addr, calls_as),
        channel(settings.traffic_addr, calls_as),
        channel(settings.notifier_addr, calls_as),
    )
    service = RouterService(
        rules, downstream, ThreadPoolExecutor(max_workers=64), settings.router_leg_timeout_s
    )
    return start_server(
        [
            Registration(
                service,
                router_pb2_grpc.add_RouterServiceServicer_to_server,
                router_pb2.DESCRIPTOR.services_by_name["RouterService"].full_name,
                CALLERS,
            )
        ],
        port=settings.router_port if port is None else port,
        settings=settings,
        max_workers=64,
    )
