"""Throwaway databases for tests: a fresh PostgreSQL database each (the default),
or a SQLite file when AMOROUTE_TEST_DB=sqlite."""

import os
import uuid
from pathlib import Path

import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get(
    "TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def backend() -> str:
    return os.environ.get("AMOROUTE_TEST_DB", "postgresql")


def create_database(name: str, sqlite_dir: Path) -> str:
    """A new empty database; returns its URL."""
    if backend() == "sqlite":
        return f"sqlite:///{sqlite_dir / (name + '-' + uuid.uuid4().hex[:8])}.sqlite3"
    db = f"amoroute_t_{name}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
    admin.dispose()
    return sa.engine.make_url(PG_ADMIN_URL).set(database=db).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(str(parsed.database) + suffix).unlink(missing_ok=True)
        return
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    admin.dispose()
