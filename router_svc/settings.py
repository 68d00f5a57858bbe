"""Every environment variable router_svc reads."""

from typing import Literal

from amoroute.settings import CommonSettings
from router_svc.rules import DEFAULT_RULES_PATH


class Settings(CommonSettings):
    router_port: int = 50051
    # The rules file: it seeds an empty database, or is authoritative with
    # ROUTING_RULES_SOURCE=file (rules managed in git).
    routing_rules: str = str(DEFAULT_RULES_PATH)
    routing_rules_source: Literal["database", "file"] = "database"
    router_database_url: str = "sqlite:///var/router.sqlite3"
    referral_addr: str = "localhost:50052"
    traffic_addr: str = "localhost:50053"
    notifier_addr: str = "localhost:50054"
    # Upper bound for one downstream call; the caller's deadline may shorten it.
    router_leg_timeout_s: float = 1.5
