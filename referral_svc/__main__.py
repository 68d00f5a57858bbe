"""`python -m referral_svc [serve|migrate]`."""

from amoroute.cli import run_service
from referral_svc import server
from referral_svc.settings import Settings

run_service("referral_svc", Settings(), server.upgrade_database, server.build)
