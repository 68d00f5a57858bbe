"""The gRPC services started in-process on ephemeral ports, each on a fresh
migrated database, for tests that need real downstream services."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import notifier_svc.server
import notifier_svc.settings
import referral_svc.server
import referral_svc.settings
import router_svc.server
import router_svc.settings
import traffic_svc.server
import traffic_svc.settings
from amoroute.grpc_server import RunningServer


@dataclass
class Services:
    servers: dict[str, RunningServer] = field(default_factory=dict)
    # Settings every service and router gets (e.g. grpc_auth_tokens).
    common: Mapping[str, Any] = field(default_factory=dict)
    make_database: Callable[[str], str] | None = None

    def addr(self, name: str) -> str:
        return f"127.0.0.1:{self.servers[name].port}"

    def start_router(self, name: str = "router", **overrides: str | float) -> str:
        """Start a RouterService calling these services, on a fresh migrated database
        of its own unless `overrides` name one (router_database_url, from
        router_database(): replicas sharing a database); `overrides` replace its
        settings (e.g. traffic_addr of a port nobody listens on). Returns its address."""
        if "router_database_url" not in overrides:
            overrides["router_database_url"] = self.router_database()
        settings = router_svc.settings.Settings(
            **{
                **self.common,
                "referral_addr": self.addr("referral"),
                "traffic_addr": self.addr("traffic"),
                "notifier_addr": self.addr("notifier"),
                **overrides,
            }
        )
        self.servers[name] = router_svc.server.build(settings, port=0)
        return self.addr(name)

    def router_database(self) -> str:
        """A fresh database migrated for the router (as its migration Job would)."""
        assert self.make_database is not None, "start_services() makes the router's database"
        url = self.make_database("router")
        router_svc.server.upgrade_database(router_svc.settings.Settings(router_database_url=url))
        return url

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop(0)


def start_services(
    make_database: Callable[[str], str], common: Mapping[str, Any] | None = None, **notifier: str
) -> Services:
    """Referral, traffic and notifier services; `common` adds settings of every
    service (and of the routers started later), `notifier` those of the notifier."""
    common = dict(common or {})
    ref = referral_svc.settings.Settings(
        referral_database_url=make_database("referral"), **common
    )
    tra = traffic_svc.settings.Settings(traffic_database_url=make_database("traffic"), **common)
    note = notifier_svc.settings.Settings(
        notifier_database_url=make_database("notifier"), **common, **notifier
    )
    referral_svc.server.upgrade_database(ref)
    traffic_svc.server.upgrade_database(tra)
    notifier_svc.server.upgrade_database(note)
    return Services(
        {
            "referral": referral_svc.server.build(ref, port=0),
            "traffic": traffic_svc.server.build(tra, port=0),
            "notifier": notifier_svc.server.build(note, port=0),
        },
        common,
        make_database,
    )
