"""Wiring: database, servicer, gRPC server."""

from pathlib import Path

from amoroute.callers import EDGE, NOTIFIER, OPERATOR, ROUTER
from amoroute.db import create_engine, migrate
from amoroute.grpc_server import Registration, RunningServer, start_server
from amoroute.v1 import referral_pb2, referral_pb2_grpc
from referral_svc.service import ReferralService
from referral_svc.settings import Settings
from referral_svc.store import ReferralStore

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_referral"

# Who may call each method (amoroute/grpc_auth.py): only the router credits and
# reverses; the edge reads for its dashboards. Partners and their commission rates
# are set by a person: the operator with grpcurl, or an admin in the admin UI, whose
# request the edge passes on (PUT /api/admin/partners/{code}) only once it has
# checked the admin token (edge/access.py).
CALLERS = {
    "RecordConversion": (ROUTER,),
    "BatchRecordConversions": (ROUTER,),
    "ReverseConversion": (ROUTER,),
    "WithdrawConversion": (ROUTER, OPERATOR),
    "UpsertPartner": (EDGE, OPERATOR),
    "ListConversions": (EDGE, OPERATOR),
    "GetReferrerStats": (EDGE, OPERATOR, NOTIFIER),
}


def upgrade_database(settings: Settings) -> None:
    migrate(settings.referral_database_url, MIGRATIONS, VERSION_TABLE)


def build(settings: Settings, port: int | None = None) -> RunningServer:
    """Start ReferralService on `port` (settings' port when None; 0 = any free port)."""
    store = ReferralStore(
        create_engine(
            settings.referral_database_url, settings.db_pool_size, settings.db_max_overflow
        )
    )
    return start_server(
        [
            Registration(
                ReferralService(store),
                referral_pb2_grpc.add_ReferralServiceServicer_to_server,
                referral_pb2.DESCRIPTOR.services_by_name["ReferralService"].full_name,
                CALLERS,
            )
        ],
        port=settings.referral_port if port is None else port,
        settings=settings,
    )
