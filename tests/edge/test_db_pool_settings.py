"""DB_POOL_SIZE and DB_MAX_OVERFLOW: read by every process that opens a database, checked
at start, and the bound of the engine's connections on PostgreSQL."""

import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

import edge.settings
import notifier_svc.settings
import referral_svc.settings
import traffic_svc.settings
from amoroute.db import create_engine

PROCESSES = [edge.settings.Settings, referral_svc.settings.Settings,
             traffic_svc.settings.Settings, notifier_svc.settings.Settings]


@pytest.mark.parametrize("settings", PROCESSES)
def test_every_process_reads_the_pool_settings(
    settings: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (settings().db_pool_size, settings().db_max_overflow) == (20, 10)
    monkeypatch.setenv("DB_POOL_SIZE", "5")
    monkeypatch.setenv("DB_MAX_OVERFLOW", "0")
    assert (settings().db_pool_size, settings().db_max_overflow) == (5, 0)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("DB_POOL_SIZE", "0"), ("DB_POOL_SIZE", "-3"), ("DB_POOL_SIZE", "501"),
     ("DB_POOL_SIZE", "twenty"), ("DB_MAX_OVERFLOW", "-1"), ("DB_MAX_OVERFLOW", "501")],
)
def test_a_pool_setting_out_of_bounds_stops_the_start_naming_it(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as refused:
        traffic_svc.settings.Settings()
    assert variable.lower() in str(refused.value)


def test_an_engine_holds_at_most_pool_size_plus_overflow_connections(
    make_database: Callable[[str], str],
) -> None:
    url = make_database("pool")
    if not url.startswith("postgresql"):
        pytest.skip("SQLite keeps SQLAlchemy's own pool; the settings are PostgreSQL's")
    engine = create_engine(url, pool_size=2, max_overflow=1)
    try:
        held = [engine.connect() for _ in range(3)]
        assert (engine.pool.checkedout(), engine.pool.overflow()) == (3, 1)
        got_fourth = threading.Event()

        def fourth() -> None:
            with engine.connect() as conn:
                conn.execute(sa.text("select 1"))
                got_fourth.set()

        waiter = threading.Thread(target=fourth)
        waiter.start()
        # The fourth waits for a connection to come back rather than opening one.
        assert not got_fourth.wait(0.5)
        held.pop().close()
        assert got_fourth.wait(10)
        waiter.join(10)
        for conn in held:
            conn.close()
        # Back in the pool: two kept, the overflow one closed.
        assert engine.pool.checkedin() == 2
    finally:
        engine.dispose()
