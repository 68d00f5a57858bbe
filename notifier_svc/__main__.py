"""`python -m notifier_svc [serve|migrate]`."""

from amoroute.cli import run_service
from notifier_svc import server
from notifier_svc.settings import Settings, describe

run_service("notifier_svc", Settings(), server.upgrade_database, server.build, describe)
