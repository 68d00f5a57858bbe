"""Commits the log rows of concurrent webhooks together (group commit).

Every webhook's answer waits for its rows to be committed; a commit is the
costly part of that (a round trip, a WAL flush, the statement's overhead),
so each edge process runs one writer thread that takes every write waiting
at that moment and commits them in one INSERT. Under load a commit carries
many webhooks; alone, a webhook waits for nothing but its own commit. Large
bodies' rows have a writer thread of their own, so a normal webhook never
waits behind their long INSERT. A commit that fails is retried webhook by
webhook, so only a webhook whose own rows cannot be stored is answered 503."""

import logging
import queue
from concurrent.futures import Future
from typing import NamedTuple

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from amoroute.process_thread import ProcessThread, take_batch
from edge.log_store import NewLog, WebhookLogStore

log = logging.getLogger(__name__)

# Rows in one commit at most.
MAX_ROWS = 500
# After the first write, how long the writer waits for others to join its commit,
# while the last commit carried more than one webhook.
# PERF: a commit costs the same CPU whatever it carries, so under load a little
# waiting makes fewer, fuller commits; below that load no one would join, and
# waiting only adds latency; measured by python -m bench.ab
LINGER_S = 0.002
# A webhook gives up waiting for its commit after this long (and is answered 503).
WAIT_S = 10.0


class _Write(NamedTuple):
    """One webhook's rows, and the future of their ids (or of the database's error)."""

    rows: list[NewLog]
    committed: Future[list[int]]


class LogWriter:
    def __init__(
        self, logs: WebhookLogStore, max_rows: int = MAX_ROWS, *, large_lane: bool = True
    ) -> None:
        self.logs = logs
        self.max_rows = max_rows
        self._writes: queue.SimpleQueue[_Write] = queue.SimpleQueue()
        self._conn: Connection | None = None
        self._thread = ProcessThread("log-writer", self._run)
        # PERF: a large body's rows (a 500-lead batch, a crafted body logged whole)
        # commit on a writer of their own, so their long INSERT never holds up a
        # normal webhook's commit; measured by python -m bench.hostile_bodies
        self._large = LogWriter(logs, max_rows, large_lane=False) if large_lane else None

    def insert(
        self, rows: list[NewLog], wait_s: float = WAIT_S, *, large: bool = False
    ) -> list[int]:
        """Commit the rows (with whatever other webhooks are writing); their ids
        in order. Raises what the database raised, or TimeoutError. `large`: the rows
        of a large body, committed on the large bodies' own writer."""
        if large and self._large is not None:
            return self._large.insert(rows, wait_s)
        self._thread.start_once()
        committed: Future[list[int]] = Future()
        self._writes.put(_Write(rows, committed))
        try:
            return committed.result(wait_s)
        except TimeoutError:
            if committed.done():  # what the database raised
                raise
            raise TimeoutError(f"the log rows were not committed within {wait_s} s") from None

    def _run(self) -> None:
        linger_s = 0.0
        while True:
            batch = take_batch(self._writes, self.max_rows, lambda write: len(write.rows), linger_s)
            # Linger only while webhooks come together: a lone one waits for
            # nothing but its own commit.
            linger_s = LINGER_S if len(batch) > 1 else 0.0
            self._commit(batch)

    def _commit(self, batch: list[_Write]) -> None:
        rows = [row for write in batch for row in write.rows]
        try:
            ids = self._insert(rows)
        except Exception as exc:
            if len(batch) == 1:  # the webhook is answered 503
                batch[0].committed.set_exception(exc)
                return
            # One webhook's rows must not fail the others': each is written alone.
            log.warning("a group commit failed; writing its webhooks one by one: %s", exc)
            for write in batch:
                self._commit([write])
            return
        start = 0
        for write in batch:
            write.committed.set_result(ids[start : start + len(write.rows)])
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
