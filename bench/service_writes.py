"""`python -m bench.service_writes`: the services' batch writes on PostgreSQL, in
process: TrafficService's record_many (a sale per lead), ReferralService's
record_many (a conversion per lead) and NotifierService's create_many (an
outbox row per lead), in batches as BatchRouteDeals sends them, first with
new leads and then the same leads again (duplicates).

Reports client CPU and PostgreSQL backend CPU per item (the backend's
/proc/<pid>/stat, so PostgreSQL must run on this machine). Writes
bench/results/service_writes.json. Compare two commits by running it on each.
"""

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from amoroute.db import create_engine
from bench.edge_writes import measure, report
from notifier_svc import server as notifier_server
from notifier_svc.settings import Settings as NotifierSettings
from notifier_svc.store import NewNotification, NotificationStore, Status
from referral_svc import server as referral_server
from referral_svc.settings import Settings as ReferralSettings
from referral_svc.store import NewConversion, ReferralStore
from tests.support.databases import create_database, drop_database
from traffic_svc import server as traffic_server
from traffic_svc.settings import Settings as TrafficSettings
from traffic_svc.store import NewSale, SalesStore

ITEMS = int(os.environ.get("BENCH_SERVICE_ITEMS", "20000"))
BATCH = int(os.environ.get("BENCH_SERVICE_BATCH", "50"))
UTM = {"source": "kenesary_fb", "campaign": "june"}


def sale(lead_id: int) -> NewSale:
    return NewSale(1, lead_id, "Kenesary", UTM, 150_000, f"Deal {lead_id}", None)


def conversion(lead_id: int) -> NewConversion:
    return NewConversion(1, lead_id, "PARTNER1", 150_000, f"Deal {lead_id}", None, UTM)


def notification(lead_id: int) -> NewNotification:
    return NewNotification(1, lead_id, "-1001", f"Deal {lead_id}: 150000", Status.NOT_SENT)


def batches(write: Callable[[list[object]], object], make: Callable[[int], object]) -> None:
    for start in range(0, ITEMS, BATCH):
        write([make(lead) for lead in range(start, start + BATCH)])


def main() -> None:
    tmp = Path(tempfile.gettempdir())
    cases = [
        (
            "traffic record_many",
            "traffic_database_url",
            TrafficSettings,
            traffic_server,
            SalesStore,
            "record_many",
            sale,
        ),
        (
            "referral record_many",
            "referral_database_url",
            ReferralSettings,
            referral_server,
            ReferralStore,
            "record_many",
            conversion,
        ),
        (
            "notifier create_many",
            "notifier_database_url",
            NotifierSettings,
            notifier_server,
            NotificationStore,
            "create_many",
            notification,
        ),
    ]
    results: dict[str, dict[str, float]] = {}
    for name, url_field, settings, server, store_class, method, make in cases:
        url = create_database("bench_service_writes", tmp)
        try:
            server.upgrade_database(settings(**{url_field: url}))
            engine = create_engine(url, pool_size=2)
            write = getattr(store_class(engine), method)
            for round_name in ("new", "duplicate"):
                results[f"{name}, {round_name}"] = measure(
                    engine, ITEMS, lambda write=write, make=make: batches(write, make)
                )
            engine.dispose()
        finally:
            drop_database(url)
    report(
        f"service writes on PostgreSQL, {ITEMS:,} items in batches of {BATCH}; CPU per item",
        results,
        "service_writes.json",
    )


if __name__ == "__main__":
    main()
