"""Wiring: database, servicer, gRPC server."""

from pathlib import Path

from amoroute.callers import EDGE, NOTIFIER, OPERATOR, ROUTER
from amoroute.db import create_engine, migrate
from amoroute.grpc_server import Registration, RunningServer, start_server
from amoroute.v1 import traffic_pb2, traffic_pb2_grpc
from traffic_svc.service import TrafficService
from traffic_svc.settings import Settings
from traffic_svc.store import SalesStore

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_traffic"

# Who may call each method (amoroute/grpc_auth.py): only the router records and
# reverses sales (a person may withdraw one too); the edge reads for its dashboards.
CALLERS = {
    "RecordSale": (ROUTER,),
    "BatchRecordSales": (ROUTER,),
    "ReverseSale": (ROUTER,),
    "WithdrawSale": (ROUTER, OPERATOR),
    "ListSales": (EDGE, OPERATOR, NOTIFIER),
    "GetTargetologistStats": (EDGE, OPERATOR),
}


def upgrade_database(settings: Settings) -> None:
    migrate(settings.traffic_database_url, MIGRATIONS, VERSION_TABLE)


def build(settings: Settings, port: int | None = None) -> RunningServer:
    """Start TrafficService on `port` (settings' port when None; 0 = any free port)."""
    store = SalesStore(
        create_engine(
            settings.traffic_database_url, settings.db_pool_size, settings.db_max_overflow
        )
    )
    return start_server(
        [
            Registration(
                TrafficService(store),
                traffic_pb2_grpc.add_TrafficServiceServicer_to_server,
                traffic_pb2.DESCRIPTOR.services_by_name["TrafficService"].full_name,
                CALLERS,
            )
        ],
        port=settings.traffic_port if port is None else port,
        settings=settings,
    )
