"""Wiring: rules (database or file), downstream channels, gRPC server."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from amoroute.callers import EDGE, NOTIFIER, OPERATOR, ROUTER
from amoroute.channels import channel
from amoroute.db import create_engine, migrate
from amoroute.grpc_server import Registration, RunningServer, start_server
from amoroute.v1 import router_pb2, router_pb2_grpc
from router_svc.rules import RulesFile
from router_svc.rules_versions import DatabaseRules
from router_svc.service import Downstream, RouterService
from router_svc.settings import Settings
from router_svc.store import RulesStore

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_router"

# Who may call each method (amoroute/grpc_auth.py). The edge routes webhooks and
# replays, reads the rules for its admin pages and stores an admin's edit of them;
# the operator may do the same by hand.
CALLERS = {
    "RouteDeal": (EDGE, OPERATOR),
    "BatchRouteDeals": (EDGE, OPERATOR),
    "ExplainRoute": (EDGE, OPERATOR),
    "BatchExplainRoutes": (EDGE, OPERATOR),
    "DescribeRules": (EDGE, OPERATOR),
    "SuggestOwners": (EDGE, OPERATOR),
    "GetRules": (EDGE, OPERATOR, NOTIFIER),
    "ListRulesVersions": (EDGE, OPERATOR),
    "UpdateRules": (EDGE, OPERATOR),
}


def upgrade_database(settings: Settings) -> None:
    migrate(settings.router_database_url, MIGRATIONS, VERSION_TABLE)


def load_rules(settings: Settings) -> DatabaseRules | RulesFile:
    """The rules in force, from ROUTING_RULES_SOURCE; bad rules stop the start here."""
    if settings.routing_rules_source == "file":
        return RulesFile(settings.routing_rules)
    store = RulesStore(create_engine(settings.router_database_url, pool_size=4))
    return DatabaseRules(store, settings.routing_rules)


def build(settings: Settings, port: int | None = None) -> RunningServer:
    """Start RouterService on `port` (settings' port when None; 0 = any free port)."""
    rules = load_rules(settings)
    calls_as = settings.caller_credentials(ROUTER)
    downstream = Downstream(
        channel(settings.referral_addr, calls_as),
        channel(settings.traffic_addr, calls_as),
        channel(settings.notifier_addr, calls_as),
    )
    service = RouterService(
        rules,
        downstream,
        ThreadPoolExecutor(max_workers=64),
        settings.router_leg_timeout_s,
        settings.caller_tokens(),
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
