"""routing_rules_versions: the only module of router_svc that names its table.

Each version of the routing rules is a row, numbered 1, 2, 3, ... with no gaps. A version
is stored only as the successor of the version its editor started from, in one
statement: two editors who started from the same version cannot both store theirs.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from amoroute.db import is_postgres
from amoroute.timeutil import now, utc

metadata = sa.MetaData()

versions = sa.Table(
    "routing_rules_versions",
    metadata,
    sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("yaml", sa.Text, nullable=False),
    # The validated document as JSON text (router_svc.rules.rules_json), in the
    # document's own key order on every database.
    sa.Column("json", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("author", sa.String(200), nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
)


@dataclass(frozen=True)
class StoredVersion:
    """One stored version of the routing rules."""

    version: int
    yaml: str
    json: str
    created_at: datetime
    author: str
    comment: str

    @property
    def id(self) -> int:
        """The version, as the id amoroute.paging pages by."""
        return self.version


class StaleVersion(Exception):
    """The edit started from a version that is no longer the current one."""

    def __init__(self, current: int, expected: int) -> None:
        super().__init__(
            f"rules are at version {current}, the edit started from version {expected}; "
            "reload and reapply"
        )
        self.current = current
        self.expected = expected


def _row(row: Any) -> StoredVersion:
    return StoredVersion(
        version=row.version,
        yaml=row.yaml,
        json=row.json,
        created_at=utc(row.created_at),
        author=row.author,
        comment=row.comment,
    )


class RulesStore:
    """The versions of the routing rules in the router's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._dialect_insert = postgresql.insert if is_postgres(engine) else sqlite.insert

    def current_version(self) -> int:
        """The newest version's number; 0 while none is stored. The cheap query every
        replica runs once a second to notice a new version."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(versions.c.version))).scalar() or 0)

    def get(self, version: int) -> StoredVersion | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(versions).where(versions.c.version == version)).first()
        return _row(row) if row else None

    def latest(self) -> StoredVersion | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(versions).order_by(versions.c.version.desc()).limit(1)
            ).first()
        return _row(row) if row else None

    def page(self, limit: int, before: int | None) -> list[StoredVersion]:
        """Up to `limit` versions, newest first, below version `before` when given."""
        query = sa.select(versions).order_by(versions.c.version.desc()).limit(limit)
        if before is not None:
            query = query.where(versions.c.version < before)
        with self.engine.connect() as conn:
            return [_row(row) for row in conn.execute(query)]

    def add(
        self,
        expected_version: int,
        yaml: str,
        json: str,
        author: str,
        comment: str,
    ) -> StoredVersion:
        """Store version expected_version + 1, only if expected_version is the newest
        (0: none stored yet); StaleVersion otherwise.

        One statement, INSERT ... SELECT ... WHERE max(version) = expected ON CONFLICT DO
        NOTHING: of two editors racing from the same version, PostgreSQL lets one insert
        and the other meet the primary key (and do nothing); SQLite runs them one after
        the other and the second finds the max moved. Never a check, then a write."""
        created_at = now()
        values = {
            "version": expected_version + 1,
            "yaml": yaml,
            "json": json,
            "created_at": created_at,
            "author": author,
            "comment": comment,
        }
        newest = sa.select(sa.func.coalesce(sa.func.max(versions.c.version), 0)).scalar_subquery()
        source = sa.select(
            *(sa.literal(value, versions.c[key].type).label(key) for key, value in values.items())
        ).where(newest == expected_version)
        statement = (
            self._dialect_insert(versions)
            .from_select(list(values), source)
            .on_conflict_do_nothing()
            .returning(versions.c.version)
        )
        with self.engine.begin() as conn:
            stored = conn.execute(statement).scalar()
        if stored is None:
            raise StaleVersion(self.current_version(), expected_version)
        return StoredVersion(
            version=stored,
            yaml=yaml,
            json=json,
            created_at=created_at,
            author=author,
            comment=comment,
        )


__all__ = ["RulesStore", "StaleVersion", "StoredVersion", "versions"]
