"""The SQL of webhook_logs retention (edge/retention.py says what is kept).

PostgreSQL (webhook_logs and webhook_attempts partitioned by month, migration 0011):
- partitions are created ahead (the current month and MONTHS_AHEAD more); rows of such a
  month already waiting in the DEFAULT partition (a clock ahead) move into it;
- a month wholly older than the retention is dropped, both tables' partitions in one
  transaction; the rows of it that must stay (pending, still retried, or errors within the
  error retention) are copied out first and put back through the parent table, which files
  them in the DEFAULT partition since no partition covers their month any more;
- the DEFAULT partition (rows older or newer than every partition: an import, a restore, a
  clock gone wrong, and the rows kept from dropped months) is pruned by row deletes in
  bounded batches, each log's attempts with it.
The partition changes lock both parent tables for a moment (ACCESS EXCLUSIVE: intake waits),
bounded by lock_timeout: a run that cannot get the locks tries again at the next interval.

SQLite: settled old rows are deleted in bounded batches, each its own transaction, so the
webhooks' writes get the database between batches."""

import logging
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from amoroute.db import is_postgres
from edge.event_lifecycle import SUCCESS
from edge.log_store import webhook_attempts
from edge.retention import Month, RetentionPolicy, months_to_create, months_to_drop

log = logging.getLogger("edge.retention")

# Rows one delete removes: small enough that a webhook's write never waits long for it.
BATCH = 5000
_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '10s'"
_DEFAULT_SUFFIX = "default"


@dataclass
class RetentionReport:
    """What one run did."""

    created: list[str] = field(default_factory=list)  # partitions created (months)
    dropped: list[str] = field(default_factory=list)  # partitions dropped (months)
    kept_from_dropped: int = 0  # rows of dropped months kept (moved to DEFAULT)
    deleted: int = 0  # rows deleted one by one (SQLite, or PostgreSQL's DEFAULT)
    filed: int = 0  # attempts of the previous release given their log's month

    def as_json(self) -> dict[str, object]:
        return {
            "created": self.created,
            "dropped": self.dropped,
            "kept_from_dropped": self.kept_from_dropped,
            "deleted": self.deleted,
            "filed": self.filed,
        }


class RetentionStore:
    def __init__(self, engine: Engine, policy: RetentionPolicy, batch: int = BATCH) -> None:
        self.engine = engine
        self.policy = policy
        self.batch = batch
        self.postgres = is_postgres(engine)

    def run(self, at: datetime) -> RetentionReport:
        """One retention run as of `at`: partitions ahead, old months dropped, old rows
        deleted. The caller makes sure one worker runs at a time."""
        report = RetentionReport()
        if not self.postgres:
            report.deleted = self._delete_batches("webhook_logs", at)
            return report
        report.filed = self._file_attempts_of_previous_release()
        report.created = self.make_partitions(months_to_create(at))
        for month in months_to_drop(self.months(), self.policy, at):
            report.kept_from_dropped += self._drop_month(month, at)
            report.dropped.append(month.suffix)
        report.deleted = self._delete_batches(f"webhook_logs_{_DEFAULT_SUFFIX}", at)
        return report

    def _file_attempts_of_previous_release(self) -> int:
        """Give the attempts recorded without log_received_at (by the release before
        migration 0011, during a rolling update: -infinity, in the DEFAULT partition)
        their log's received_at, which moves them to its month's partition."""
        with self.engine.begin() as conn:
            return conn.execute(
                sa.text(
                    "UPDATE webhook_attempts a SET log_received_at = l.received_at "
                    "FROM webhook_logs l "
                    "WHERE a.log_received_at = '-infinity' AND l.id = a.log_id"
                )
            ).rowcount

    def make_partitions(self, months: list[Month]) -> list[str]:
        """Partitions of each of `months` for both tables, where missing (PostgreSQL);
        returns the suffixes of those made."""
        return [month.suffix for month in months if self._create_month(month)]

    def months(self) -> list[Month]:
        """The months webhook_logs has a partition for (PostgreSQL), oldest first."""
        with self.engine.connect() as conn:
            return sorted(
                month
                for name in _partitions(conn, "webhook_logs")
                if (month := Month.from_suffix(name.removeprefix("webhook_logs_"))) is not None
            )

    def _removable(self, at: datetime) -> sa.TextClause:
        """Settled, and older than the retention that applies to it (edge/retention.py)."""
        return _REMOVABLE.bindparams(
            cutoff=self.policy.cutoff(at), error_cutoff=self.policy.error_cutoff(at)
        )

    def _delete_batches(self, table_name: str, at: datetime) -> int:
        """Delete the removable rows of `table_name` (webhook_logs or its DEFAULT
        partition) with their attempts, `batch` at a time; returns how many."""
        table = sa.table(table_name, sa.column("id"))
        removable = self._removable(at)
        deleted = 0
        while True:
            with self.engine.begin() as conn:
                batch = (
                    sa.select(table.c.id)
                    .where(removable)
                    .order_by(table.c.id)
                    .limit(self.batch)
                    .scalar_subquery()
                )
                ids = (
                    conn.execute(
                        # Removable checked again on the row deleted: it may have
                        # changed since the subquery read it.
                        sa.delete(table)
                        .where(table.c.id.in_(batch), removable)
                        .returning(table.c.id)
                    )
                    .scalars()
                    .all()
                )
                if not ids:
                    return deleted
                conn.execute(
                    sa.delete(webhook_attempts).where(webhook_attempts.c.log_id.in_(ids))
                )
            deleted += len(ids)
            if len(ids) < self.batch:
                return deleted

    def _create_month(self, month: Month) -> bool:
        """Partitions of `month` for both tables, unless they exist; True when created."""
        logs_name, attempts_name = _names(month)
        with self.engine.begin() as conn:
            if logs_name in _partitions(conn, "webhook_logs"):
                return False
            conn.execute(sa.text(_LOCK_TIMEOUT))
            conn.execute(
                sa.text("LOCK TABLE webhook_logs, webhook_attempts IN ACCESS EXCLUSIVE MODE")
            )
            bounds = {"start": month.start, "end": month.end}
            # Rows of this month in the DEFAULT partition would make the new partition's
            # creation fail: they move into it.
            _temp_copy(conn, "moving_logs", "webhook_logs")
            _temp_copy(conn, "moving_attempts", "webhook_attempts")
            conn.execute(
                sa.text(
                    "INSERT INTO moving_logs SELECT * FROM webhook_logs_default "
                    "WHERE received_at >= :start AND received_at < :end"
                ),
                bounds,
            )
            conn.execute(
                sa.text(
                    "INSERT INTO moving_attempts SELECT * FROM webhook_attempts_default "
                    "WHERE log_received_at >= :start AND log_received_at < :end"
                ),
                bounds,
            )
            moved = conn.execute(
                sa.text(
                    "DELETE FROM webhook_logs_default "
                    "WHERE received_at >= :start AND received_at < :end"
                ),
                bounds,
            ).rowcount
            conn.execute(
                sa.text(
                    "DELETE FROM webhook_attempts_default "
                    "WHERE log_received_at >= :start AND log_received_at < :end"
                ),
                bounds,
            )
            for name, parent in ((logs_name, "webhook_logs"), (attempts_name, "webhook_attempts")):
                # Bounds as literals: DDL takes no parameters (they come from Month, not input).
                options = " WITH (" + _VACUUM_OFTEN + ")" if parent == "webhook_logs" else ""
                conn.execute(
                    sa.text(
                        f"CREATE TABLE {name} PARTITION OF {parent} FOR VALUES FROM "
                        f"('{month.start.isoformat()}') TO ('{month.end.isoformat()}'){options}"
                    )
                )
            conn.execute(sa.text("INSERT INTO webhook_logs SELECT * FROM moving_logs"))
            conn.execute(sa.text("INSERT INTO webhook_attempts SELECT * FROM moving_attempts"))
        log.info("partitions created", extra={"month": month.suffix, "moved_from_default": moved})
        return True

    def _drop_month(self, month: Month, at: datetime) -> int:
        """Drop `month`'s partitions of both tables; the rows that must stay move to the
        DEFAULT partition first. Returns how many rows stayed."""
        logs_name, attempts_name = _names(month)
        with self.engine.begin() as conn:
            conn.execute(sa.text(_LOCK_TIMEOUT))
            conn.execute(
                sa.text("LOCK TABLE webhook_logs, webhook_attempts IN ACCESS EXCLUSIVE MODE")
            )
            _temp_copy(conn, "kept_logs", "webhook_logs")
            _temp_copy(conn, "kept_attempts", "webhook_attempts")
            conn.execute(
                sa.text(
                    f"INSERT INTO kept_logs SELECT * FROM {logs_name} "
                    f"WHERE NOT ({_REMOVABLE.text})"
                ),
                {"cutoff": self.policy.cutoff(at), "error_cutoff": self.policy.error_cutoff(at)},
            )
            conn.execute(
                sa.text(
                    f"INSERT INTO kept_attempts SELECT a.* FROM {attempts_name} a "
                    "JOIN kept_logs k ON k.id = a.log_id AND k.received_at = a.log_received_at"
                )
            )
            for name, parent in ((attempts_name, "webhook_attempts"), (logs_name, "webhook_logs")):
                conn.execute(sa.text(f"ALTER TABLE {parent} DETACH PARTITION {name}"))
                conn.execute(sa.text(f"DROP TABLE {name}"))
            stayed = conn.execute(
                sa.text("INSERT INTO webhook_logs SELECT * FROM kept_logs")
            ).rowcount
            conn.execute(sa.text("INSERT INTO webhook_attempts SELECT * FROM kept_attempts"))
        log.info("partitions dropped", extra={"month": month.suffix, "rows_kept": stayed})
        return stayed


# The rule of edge/retention.py: settled (no retry waiting), and older than the retention,
# or than the error retention for an event that did not end in success.
_REMOVABLE = sa.text(
    f"retry_at IS NULL AND received_at < :cutoff "
    f"AND (processing_status = '{SUCCESS}' OR received_at < :error_cutoff)"
).bindparams(
    sa.bindparam("cutoff", type_=sa.DateTime(timezone=True)),
    sa.bindparam("error_cutoff", type_=sa.DateTime(timezone=True)),
)
# What migration 0005 set on webhook_logs, now on each of its partitions.
_VACUUM_OFTEN = "autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 5000"


def _temp_copy(conn: Connection, name: str, like: str) -> None:
    """An empty temporary table shaped like `like`, gone at the transaction's end."""
    conn.execute(sa.text(f"CREATE TEMP TABLE {name} (LIKE {like}) ON COMMIT DROP"))


def _names(month: Month) -> tuple[str, str]:
    return f"webhook_logs_{month.suffix}", f"webhook_attempts_{month.suffix}"


def _partitions(conn: Connection, parent: str) -> set[str]:
    """The names of `parent`'s partitions."""
    return set(
        conn.execute(
            sa.text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = CAST(:parent AS regclass)"
            ),
            {"parent": parent},
        ).scalars()
    )
