"""amoroute.db.DriverStatement on a real PostgreSQL: its errors come out as
Connection.execute raises them, and a restart renews the whole pool."""

import pytest
import sqlalchemy as sa

from amoroute.db import DriverStatement, create_engine

SELECT_ONE = DriverStatement(sa.text("SELECT :n AS n"), prepare=True)


@pytest.fixture
def engine(make_database) -> sa.Engine:  # type: ignore[no-untyped-def]
    url = make_database("driver")
    if not url.startswith("postgresql"):
        pytest.skip("DriverStatement runs on psycopg, PostgreSQL only")
    engine = create_engine(url, pool_size=4)
    yield engine
    engine.dispose()


def test_a_statement_error_is_wrapped_as_sqlalchemy_wraps_it(engine: sa.Engine) -> None:
    broken = DriverStatement(sa.text("SELECT * FROM no_such_table WHERE id = :id"), prepare=False)
    with engine.connect() as conn, pytest.raises(sa.exc.ProgrammingError) as err:
        broken.rows(conn, {"id": 1})
    assert not err.value.connection_invalidated
    assert "no_such_table" in str(err.value)


def test_after_a_restart_the_failed_connection_and_the_pooled_ones_are_replaced(
    engine: sa.Engine,
) -> None:
    held = [engine.connect() for _ in range(3)]
    for conn in held:
        assert SELECT_ONE.rows(conn, {"n": 1}) == [(1,)]
        conn.close()  # back in the pool, soon stale
    with engine.connect() as admin:
        admin.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ))
    with engine.connect() as conn:
        with pytest.raises(sa.exc.OperationalError) as err:
            SELECT_ONE.rows(conn, {"n": 2})
        assert err.value.connection_invalidated
        assert conn.invalidated
    # Every connection opened before the restart is gone: the next ones work at once.
    for n in range(3):
        with engine.connect() as conn:
            assert SELECT_ONE.rows(conn, {"n": n}) == [(n,)]
