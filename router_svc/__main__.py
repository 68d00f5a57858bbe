"""`python -m router_svc [serve|migrate]`."""

from amoroute.cli import run_service
from router_svc import server
from router_svc.settings import Settings

run_service("router_svc", Settings(), server.upgrade_database, server.build)
