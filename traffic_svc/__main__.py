"""`python -m traffic_svc [serve|migrate]`."""

from amoroute.cli import run_service
from traffic_svc import server
from traffic_svc.settings import Settings

run_service("traffic_svc", Settings(), server.upgrade_database, server.build)
