"""Database engines and Alembic migrations, the same way for every service.

A `sqlite:///path` URL is the embedded default for `make run`; a
`postgresql+psycopg://` URL is what production and CI use.
"""

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine

# JSON column that is JSONB on PostgreSQL.
JsonColumn = sa.JSON().with_variant(JSONB(), "postgresql")


def create_engine(url: str, pool_size: int = 20) -> Engine:
    """Build the engine for a database URL, creating a SQLite file's folder.

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
    return sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size // 2)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def migrate(url: str, migrations_dir: Path, version_table: str) -> None:
    """Upgrade the database at `url` to the newest revision in `migrations_dir`.

    Each service keeps its own version table, so two services pointed at the
    same database by mistake do not overwrite each other's migration state.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.attributes["url"] = url
    cfg.attributes["version_table"] = version_table
    command.upgrade(cfg, "head")


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


def insert_ignoring_conflicts(engine: Engine, table: sa.Table):  # type: ignore[no-untyped-def]
    """INSERT … ON CONFLICT DO NOTHING for the engine's dialect: the basis of
    every idempotent write. Add .returning(pk): a duplicate returns no row."""
    if is_postgres(engine):
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing()
