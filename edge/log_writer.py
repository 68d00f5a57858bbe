"""Commits the log rows of concurrent webhooks together (group commit).

Every webhook's answer waits for its rows to be committed; a commit is the
costly part of that (a round trip, a WAL flush, the statement's overhead),
so each edge process runs one writer thread that takes every write waiting
at that moment and commits them in one INSERT. Under load a commit carries
many webhooks; alone, a webhook waits for nothing but its own commit."""

import logging
import queue
from concurrent.futures import Future
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from edge.logs import NewLog, WebhookLogStore
from edge.process_thread import ProcessThread, take_batch

log = logging.getLogger(__name__)

# Rows in one commit at most.
MAX_ROWS = 500
# After the first write, how long the writer waits for others to join its commit:
# a commit costs ~0.3 ms of CPU whatever it carries, so under load a little
# waiting makes fewer, fuller commits.
LINGER_S = 0.002
# A webhook gives up waiting for its commit after this long (and is answered 503).
WAIT_S = 10.0


@dataclass
class _Write:
    rows: list[NewLog]
    done: "Future[list[int]]" = field(default_factory=Future)


class LogWriter:
    def __init__(self, logs: WebhookLogStore, max_rows: int = MAX_ROWS) -> None:
        self.logs = logs
        self.max_rows = max_rows
        self._writes: queue.SimpleQueue[_Write] = queue.SimpleQueue()
        self._conn: Connection | None = None
        self._thread = ProcessThread("log-writer", self._run)

    def insert(self, rows: list[NewLog], wait_s: float = WAIT_S) -> list[int]:
        """Commit the rows (with whatever other webhooks are writing); their ids
        in order. Raises what the database raised, or TimeoutError."""
        self._thread.start_once()
        write = _Write(rows)
        self._writes.put(write)
        return write.done.result(wait_s)

    def _run(self) -> None:
        while True:
            self._commit(
                take_batch(self._writes, self.max_rows, lambda write: len(write.rows), LINGER_S)
            )

    def _commit(self, batch: list[_Write]) -> None:
        rows = [row for write in batch for row in write.rows]
        try:
            ids = self._insert(rows)
        except Exception as exc:  # every webhook of the batch is answered 503
            for write in batch:
                write.done.set_exception(exc)
            return
        start = 0
        for write in batch:
            write.done.set_result(ids[start : start + len(write.rows)])
            start += len(write.rows)

    def _insert(self, rows: list[NewLog]) -> list[int]:
        try:
            return self._insert_once(rows)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            # A connection the database dropped (a restart): the pool is renewed,
            # so one more try on a fresh connection.
            log.warning("edge database connection lost; writing again on a new one")
            return self._insert_once(rows)

    def _insert_once(self, rows: list[NewLog]) -> list[int]:
        try:
            return self.logs.insert_on(self._connection(), rows)
        except Exception:
            # Whatever failed, the next write starts on a new connection: one
            # that failed is not used again.
            self._drop_connection()
            raise

    def _connection(self) -> Connection:
        # The writer keeps one connection: no pool checkout per commit.
        if self._conn is None:
            self._conn = self.logs.writing()
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
