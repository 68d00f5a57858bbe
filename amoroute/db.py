"""Database engines and Alembic migrations, the same way for every service.

A `sqlite:///path` URL is the embedded default for `make run`; a
`postgresql+psycopg://` URL is what production and CI use.
"""

import functools
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import orjson
import psycopg
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine

from amoroute.settings import DB_MAX_OVERFLOW, DB_POOL_SIZE

# JSON column that is JSONB on PostgreSQL.
JsonColumn = sa.JSON().with_variant(JSONB(), "postgresql")


def create_engine(
    url: str, pool_size: int = DB_POOL_SIZE, max_overflow: int = DB_MAX_OVERFLOW
) -> Engine:
    """Build the engine for a database URL, creating a SQLite file's folder. A
    PostgreSQL engine holds at most `pool_size` + `max_overflow` connections (the
    DB_POOL_SIZE and DB_MAX_OVERFLOW settings).

    No pre-ping (a round trip per checkout): a connection the server dropped fails
    once, SQLAlchemy then renews the whole pool, and the caller's retry (the
    worker's, AmoCRM's, the edge's one retry of an intake write) succeeds."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return sa.create_engine(url, pool_size=pool_size, max_overflow=max_overflow)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def migrate(url: str, migrations_dir: Path, version_table: str, revision: str = "head") -> None:
    """Upgrade the database at `url` to the newest revision in `migrations_dir`
    (or to `revision`: tests fill a table the way an older release left it).

    Each service keeps its own version table, so two services pointed at the
    same database by mistake do not overwrite each other's migration state.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.attributes["url"] = url
    cfg.attributes["version_table"] = version_table
    command.upgrade(cfg, revision)


def run_alembic_env() -> None:
    """Body of every service's migrations/env.py (online mode only)."""
    from alembic import context

    cfg = context.config
    engine = create_engine(cfg.attributes["url"])
    with engine.connect() as conn:
        context.configure(connection=conn, version_table=cfg.attributes["version_table"])
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def insert_ignoring_conflicts(engine: Engine, table: sa.Table) -> sa.Insert:
    """INSERT … ON CONFLICT DO NOTHING for the engine's dialect: the basis of
    every idempotent write. Add .returning(pk): a duplicate returns no row."""
    if is_postgres(engine):
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


# PostgreSQL: statements over the rows of one JSON array, the parameter `rows`.
# One parameter whatever the number of rows, so PostgreSQL and psycopg parse and
# prepare the statement once (a multi-row VALUES list is parsed anew each time).


def insert_from_json(table: sa.Table, columns: list[str], suffix: str = "") -> sa.TextClause:
    """INSERT the rows in the array's order, then `suffix` (e.g. "RETURNING id":
    with a sequence-generated id, the ids sorted are in the rows' order)."""
    return sa.text(
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"SELECT {', '.join(columns)} FROM {_json_rows_source(table, columns)} ORDER BY n "
        f"{suffix}".strip()
    )


def insert_ignoring_conflicts_returning(
    conn: Connection, table: sa.Table, rows: list[dict[str, Any]]
) -> Sequence[sa.Row[Any]]:
    """INSERT `rows` (dicts with the same keys) in their order, skipping any that
    conflict; returns every column of the rows inserted, in no set order.

    PostgreSQL: all rows as one JSON parameter, so the statement text is the same
    for any number of rows and is parsed and prepared once. Elsewhere one
    multi-row INSERT (SQLAlchemy's "insertmanyvalues")."""
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        statement = _insert_json_returning(table, tuple(rows[0]))
        return conn.execute(statement, {"rows": json_rows(rows)}).all()
    return conn.execute(
        insert_ignoring_conflicts(conn.engine, table).returning(*table.c), rows
    ).all()


@functools.lru_cache(maxsize=64)
def _insert_json_returning(table: sa.Table, columns: tuple[str, ...]) -> sa.TextualSelect:
    statement = insert_from_json(table, list(columns), "ON CONFLICT DO NOTHING RETURNING *")
    return statement.columns(*table.c)


def keys_among(
    conn: Connection, columns: Sequence[sa.Column[Any]], keys: Sequence[tuple[Any, ...]]
) -> sa.ColumnElement[bool]:
    """`(columns) IN keys`, for a WHERE clause. On PostgreSQL the keys go as one
    JSON parameter (one statement text for any number of keys, planned as a
    join on the key's index); elsewhere as a list of tuples."""
    if conn.dialect.name != "postgresql":
        return sa.tuple_(*columns).in_(keys)
    names = tuple(c.name for c in columns)
    types = _record_columns(columns[0].table, names)
    source = sa.text(f"jsonb_to_recordset(CAST(:keys AS jsonb)) AS k({types})").bindparams(
        keys=json_rows([dict(zip(names, key, strict=True)) for key in keys])
    )
    return sa.tuple_(*columns).in_(
        sa.select(*(sa.literal_column(f"k.{name}") for name in names)).select_from(source)
    )


def row_reader(table: sa.Table) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """A function turning a whole row of `table` (from select(table), or RETURNING *
    typed with table.c) into {column name: value}, by position: every row of a batch
    is read, and a Row's attribute access costs more than a tuple's index."""
    names = tuple(c.name for c in table.c)
    return lambda row: dict(zip(names, row, strict=True))


# PERF: psycopg directly for the statements run for every webhook; measured by
# python -m bench.ab
class DriverStatement:
    """A PostgreSQL statement run on psycopg directly, for the few that run for
    every webhook: SQLAlchemy's execution machinery (cache key, execution
    context, result wrapping) costs more Python than the round trip itself, and on
    a busy edge every line of Python per webhook counts. Errors come out as
    Connection.execute raises them (_wrapped).

    `prepare`: prepared once per connection (parsed and planned once), for a
    statement that reads no table, such as an INSERT of its parameter's rows.
    A statement that reads a growing table must be planned each time
    (prepare=False): PostgreSQL may keep a prepared statement's plan for the
    connection's life, and a plan made while the table was small (a sequential
    scan) gets slower with every row (see WebhookLogStore.record_outcomes)."""

    def __init__(self, statement: sa.TextClause, prepare: bool) -> None:
        self.sql = str(statement.compile(dialect=postgresql.psycopg.dialect()))
        self.prepare = prepare

    def rows(self, conn: Connection, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run on `conn`; the rows it returns."""
        if conn.invalidated:
            # Connection.connection would reconnect without the engine's connection
            # options (AUTOCOMMIT among them): a failed connection is not reused.
            raise sa.exc.InvalidRequestError("this connection was invalidated; use a new one")
        driver = conn.connection.driver_connection
        assert driver is not None  # a live connection always has its driver's
        try:
            with driver.cursor() as cursor:
                cursor.execute(self.sql, params, prepare=self.prepare)
                return cursor.fetchall() if cursor.description else []
        except psycopg.Error as exc:
            raise _wrapped(conn, exc, self.sql, params) from exc


def _wrapped(
    conn: Connection, exc: psycopg.Error, sql: str, params: dict[str, Any]
) -> sa.exc.DBAPIError:
    """`exc` as Connection.execute raises it, by public API only: wrapped in
    SQLAlchemy's exception class for it, and when the database dropped the
    connection (a restart), this connection invalidated and the engine's pool
    renewed, so the caller's one retry gets a fresh connection, not the next
    stale one."""
    lost = conn.dialect.is_disconnect(
        cast(Any, exc), conn.connection.driver_connection, None
    )
    wrapped = sa.exc.DBAPIError.instance(
        sql,
        params,
        exc,
        psycopg.Error,
        hide_parameters=conn.engine.hide_parameters,
        connection_invalidated=lost,
        dialect=conn.dialect,
    )
    if lost:
        conn.invalidate(exc)
        # The other pooled connections were opened before the restart too.
        conn.engine.dispose()
    return cast(sa.exc.DBAPIError, wrapped)


def json_rows(rows: list[dict[str, Any]]) -> str:
    """The `rows` parameter of those statements (datetimes as ISO 8601)."""
    try:
        # PERF: orjson, as every webhook's rows go through here (datetimes as RFC 3339);
        # measured by python -m bench.ab
        return orjson.dumps(rows, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:  # e.g. an int beyond 64 bits: json takes anything
        return json.dumps(rows, default=_iso, separators=(",", ":"))


def _json_rows_source(table: sa.Table, columns: list[str]) -> str:
    types = _record_columns(table, tuple(columns))
    return (
        f"ROWS FROM (jsonb_to_recordset(CAST(:rows AS jsonb)) AS ({types})) "
        f"WITH ORDINALITY AS r({', '.join(columns)}, n)"
    )


@functools.lru_cache(maxsize=64)
def _record_columns(table: sa.Table, columns: tuple[str, ...]) -> str:
    """`name type, …` of the columns, the column list jsonb_to_recordset needs."""
    pg = postgresql.dialect()
    return ", ".join(f"{c} {table.c[c].type.compile(dialect=pg)}" for c in columns)


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
