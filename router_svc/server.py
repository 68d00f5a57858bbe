"""Wiring: rules file, downstream channels, gRPC server."""

from concurrent.futures import ThreadPoolExecutor

from amoroute.channels import channel
from amoroute.grpc_server import Registration, RunningServer, start_server
from amoroute.v1 import router_pb2, router_pb2_grpc
from router_svc.rules import RulesFile
from router_svc.service import Downstream, RouterService
from router_svc.settings import Settings


def build(settings: Settings, port: int | None = None) -> RunningServer:
    """Start RouterService on `port` (settings' port when None; 0 = any free port)."""
    rules = RulesFile(settings.routing_rules)  # bad rules stop the start here
    downstream = Downstream(
        channel(settings.referral_addr, settings.grpc_tls_ca_file),
        channel(settings.traffic_addr, settings.grpc_tls_ca_file),
        channel(settings.notifier_addr, settings.grpc_tls_ca_file),
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
            )
        ],
        port=settings.router_port if port is None else port,
        tls=settings.server_tls(),
        max_workers=64,
    )
