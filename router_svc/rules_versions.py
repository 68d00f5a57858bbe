"""The routing rules in force when they are versions in the router's database
(ROUTING_RULES_SOURCE=database): the rules file seeds an empty database once, editors
store new versions, and every replica notices a new version within a second."""

import difflib
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from amoroute.errors import Unavailable
from router_svc.rules import Rules, RulesError, RulesFile, rules_json, to_rules, validate_rules_yaml
from router_svc.store import RulesStore, StaleVersion, StoredVersion

log = logging.getLogger(__name__)

SEED_AUTHOR = "file"


def diff_to_previous(previous: StoredVersion | None, current: StoredVersion) -> str:
    """Unified diff of a version's YAML against the version before it (None for the
    first: the whole document shows as added)."""
    before = previous.yaml.splitlines(keepends=True) if previous else []
    after = current.yaml.splitlines(keepends=True)
    return "".join(
        difflib.unified_diff(
            before,
            after,
            fromfile=f"version {current.version - 1}",
            tofile=f"version {current.version}",
        )
    )


@contextmanager
def _reachable() -> Iterator[None]:
    """A database that cannot be reached is UNAVAILABLE to the caller (who may retry),
    not an internal error."""
    try:
        yield
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise Unavailable(f"the router's rules database is unreachable: {exc.orig}") from exc


class DatabaseRules:
    """Holds the newest stored version of the rules and notices a newer one.

    `get()` (every routed deal) asks the database for the newest version number at most
    once per `check_interval` seconds, and reads and parses a version only when that
    number changed. While the database cannot be reached, or should a stored version no
    longer validate, the rules in force stay, and that is logged once. Thread-safe."""

    def __init__(self, store: RulesStore, seed_path: str | Path, check_interval: float = 1.0):
        self._store = store
        self._check_interval = check_interval
        self._lock = threading.Lock()
        self._unreachable = False
        self._refused_version = 0
        self._seed(Path(seed_path))
        newest = store.latest()
        assert newest is not None  # seeded just now, here or by another replica
        self._version = newest.version
        self._rules = self._parse(newest)  # a version that no longer validates stops the start
        self._loaded_at = time.time()
        self._checked_at = time.monotonic()

    @property
    def version(self) -> int:
        """The version in force on this replica."""
        return self._version

    @property
    def loaded_at(self) -> float:
        """time.time() when this replica took the version in force."""
        return self._loaded_at

    def get(self) -> Rules:
        """The rules in force, after a look for a newer version when one is due. Never
        waits on a look another thread is making: it answers with the rules in force."""
        if time.monotonic() - self._checked_at >= self._check_interval and self._lock.acquire(
            blocking=False
        ):
            try:
                if time.monotonic() - self._checked_at >= self._check_interval:
                    self._take_newest()
                    self._checked_at = time.monotonic()
            finally:
                self._lock.release()
        return self._rules

    def latest(self) -> StoredVersion:
        """The newest stored version (read from the database, not this replica's copy)."""
        with _reachable():
            newest = self._store.latest()
        assert newest is not None  # seeded at start; versions are never deleted
        return newest

    def page(self, limit: int, before: int | None) -> list[StoredVersion]:
        """Up to `limit` versions newest first, below `before` when given."""
        with _reachable():
            return self._store.page(limit, before)

    def get_version(self, version: int) -> StoredVersion | None:
        with _reachable():
            return self._store.get(version)

    def update(self, text: str, expected_version: int, author: str, comment: str) -> StoredVersion:
        """Store `text` as the version after `expected_version`. RulesError (nothing
        stored) when it does not validate, StaleVersion when expected_version is not the
        newest. This replica applies it at once; the others within a second."""
        model = validate_rules_yaml(text)
        with _reachable():
            stored = self._store.add(expected_version, text, rules_json(model), author, comment)
        log.info(
            "routing rules version %d stored",
            stored.version,
            extra={"author": author, "comment": comment},
        )
        with self._lock:
            if stored.version > self._version:
                self._take(stored.version, to_rules(model))
        return stored

    def _seed(self, path: Path) -> None:
        """Store the rules file as version 1 when no version is stored yet. Replicas
        starting together may all try: the first stores it, the others find it stored."""
        if self._store.current_version():
            return
        text, validated = RulesFile(path).text()  # an invalid file stops the start here
        try:
            self._store.add(0, text, validated, SEED_AUTHOR, f"seeded from the rules file {path}")
        except StaleVersion:
            return
        log.info("routing rules version 1 seeded from the rules file %s", path)

    def _take_newest(self) -> None:
        try:
            newest = self._store.current_version()
            if newest == self._version or newest == self._refused_version:
                self._log_reachable()
                return
            stored = self._store.get(newest)
        except sa.exc.SQLAlchemyError as exc:
            if not self._unreachable:
                self._unreachable = True
                log.error(
                    "routing rules database unreachable, keeping version %d: %s",
                    self._version,
                    exc,
                )
            return
        self._log_reachable()
        if stored is None:
            return
        try:
            rules = self._parse(stored)
        except RulesError as exc:
            self._refused_version = stored.version
            log.error("routing rules not applied, keeping version %d: %s", self._version, exc)
            return
        self._take(stored.version, rules)

    def _take(self, version: int, rules: Rules) -> None:
        self._version, self._rules, self._loaded_at = version, rules, time.time()
        log.info("routing rules version %d in force", version)

    def _log_reachable(self) -> None:
        if self._unreachable:
            self._unreachable = False
            log.info("routing rules database reachable again")

    @staticmethod
    def _parse(stored: StoredVersion) -> Rules:
        try:
            return to_rules(validate_rules_yaml(stored.yaml))
        except RulesError as exc:
            raise RulesError(exc.problems, source=f"version {stored.version}") from exc
