"""Revision 0003 of referral_svc and traffic_svc (re-attribution) on a database
holding credits from revision 0002: the rows stay, and the one-credit-per-lead
constraint becomes one live credit per lead."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

import referral_svc.server
import traffic_svc.server
from amoroute.db import create_engine
from referral_svc.store import NewConversion, ReferralStore
from traffic_svc.store import NewSale, Recorded, SalesStore

WON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
UTM = {"utm_source": "x", "utm_medium": "", "utm_campaign": "", "utm_content": "", "utm_term": ""}


def _config(url: str, migrations: Path, version_table: str) -> Config:
    """The service's Alembic configuration, as amoroute.db.migrate builds it."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations))
    cfg.attributes["url"] = url
    cfg.attributes["version_table"] = version_table
    return cfg


def _upgrade(url: str, migrations: Path, version_table: str, revision: str) -> None:
    command.upgrade(_config(url, migrations, version_table), revision)


def _rows_at_0002(url: str, table: str, beneficiary: dict[str, str]) -> None:
    """A credited lead, a reversed one and a tombstone, as revision 0002 stores them."""
    engine = create_engine(url)
    common = {"account_id": 7, "amount": 100, "deal_name": "d", "won_at": WON, **UTM}
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"INSERT INTO {table} (account_id, lead_id, {', '.join(beneficiary)}, amount,"
                " deal_name, won_at, utm_source, utm_medium, utm_campaign, utm_content, utm_term,"
                " recorded_at, reversed_at, reversal_reason) VALUES (:account_id, :lead_id, "
                + ", ".join(f":{c}" for c in beneficiary)
                + ", :amount, :deal_name, :won_at, :utm_source, :utm_medium, :utm_campaign,"
                " :utm_content, :utm_term, :won_at, :reversed_at, :reason)"
            ),
            [
                {**common, **beneficiary, "lead_id": 1, "reversed_at": None, "reason": None},
                {**common, **beneficiary, "lead_id": 2, "reversed_at": WON, "reason": "lost"},
            ],
        )
        conn.execute(
            sa.text(
                "INSERT INTO lead_reversals (account_id, lead_id, reversed_at, reason)"
                " VALUES (7, 3, :at, 'lost')"
            ),
            {"at": WON},
        )
    engine.dispose()


def test_traffic_upgrade_keeps_the_sales_and_allows_one_live_sale_per_lead(make_database) -> None:  # type: ignore[no-untyped-def]
    url = make_database("traffic_0002")
    migrations, version_table = traffic_svc.server.MIGRATIONS, traffic_svc.server.VERSION_TABLE
    _upgrade(url, migrations, version_table, "0002")
    _rows_at_0002(url, "all_sales_tracking", {"targetologist": "Kenesary"})
    _upgrade(url, migrations, version_table, "head")

    store = SalesStore(create_engine(url))
    [one] = store.page(limit=10, after_id=None, lead_id=1)
    [two] = store.page(limit=10, after_id=None, lead_id=2)
    assert (one.targetologist, one.reversed_at, one.reattributed_at) == ("Kenesary", None, None)
    assert (two.reversal_reason, two.reattributed_at) == ("lost", None)

    def sale(lead_id: int, who: str) -> NewSale:
        return NewSale(7, lead_id, who, {}, 100, "d", WON)

    assert store.record(sale(1, "Aidana"))[1] is Recorded.DUPLICATE
    assert store.record(sale(3, "Aidana"))[1] is Recorded.SUPERSEDED  # tombstone kept
    row, recorded, previous = store.record(sale(1, "Aidana"), reattribute=True)
    assert recorded is Recorded.REATTRIBUTED and previous is not None
    assert previous.targetologist == "Kenesary"
    # The partial unique index: a second live row of the lead is refused.
    with store.engine.begin() as conn, pytest.raises(sa.exc.IntegrityError):
        conn.execute(
            sa.insert(store.table).values(
                account_id=7, lead_id=1, targetologist="X", amount=1, deal_name="",
                recorded_at=WON, **UTM,
            )
        )  # fmt: skip
    store.engine.dispose()


def test_referral_upgrade_keeps_the_conversions(make_database) -> None:  # type: ignore[no-untyped-def]
    url = make_database("referral_0002")
    migrations = referral_svc.server.MIGRATIONS
    version_table = referral_svc.server.VERSION_TABLE
    _upgrade(url, migrations, version_table, "0002")
    _rows_at_0002(url, "referral_conversions", {"referral_code": "OLD"})
    _upgrade(url, migrations, version_table, "head")

    store = ReferralStore(create_engine(url))
    assert [c.referral_code for c in store.page(limit=10, after_id=None)] == ["OLD", "OLD"]
    moved = NewConversion(7, 2, "NEW", 100, "d", WON, {})
    row, recorded, previous = store.record(moved, reattribute=True)
    assert recorded is Recorded.REATTRIBUTED
    # The deal had left won: the new code's conversion is reversed as the old one was.
    assert (row.referral_code, row.reversal_reason) == ("NEW", "lost")
    assert previous is not None and previous.reattributed_at is not None
    store.engine.dispose()


def _downgrade(url: str, migrations: Path, version_table: str, revision: str) -> None:
    command.downgrade(_config(url, migrations, version_table), revision)


def test_traffic_downgrade_keeps_each_lead_live_sale(make_database) -> None:  # type: ignore[no-untyped-def]
    url = make_database("traffic_down")
    migrations, version_table = traffic_svc.server.MIGRATIONS, traffic_svc.server.VERSION_TABLE
    _upgrade(url, migrations, version_table, "head")
    store = SalesStore(create_engine(url))
    store.record(NewSale(7, 1, "Kenesary", {}, 100, "d", WON))
    store.record(NewSale(7, 1, "Aidana", {}, 100, "d", WON), reattribute=True)
    store.engine.dispose()
    _downgrade(url, migrations, version_table, "0002")
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT targetologist FROM all_sales_tracking")).all()
    engine.dispose()
    assert [r.targetologist for r in rows] == ["Aidana"]
