"""AmoCRM OAuth tokens in the edge's database: encrypted, rotated by one process at a time.

One row (`amocrm_tokens`, id 1) holds the access and refresh token, each encrypted with
AMOROUTE_SECRET_KEY (Fernet). A refresh token works once, so two processes refreshing at the
same time would lock the integration out: every refresh runs under the row's lock (SELECT ...
FOR UPDATE on PostgreSQL, a BEGIN IMMEDIATE transaction on SQLite), and a process that got
the lock after another one refreshed finds the new pair stored and uses it instead.

A refresh AmoCRM refuses (invalid_grant) marks the row "needs reconnect": every API call
stops with that message, /readyz and the admin say so and the
amoroute_amocrm_oauth_needs_reconnect metric turns 1, until an admin connects AmoCRM again.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import prometheus_client
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.engine import Connection, Engine

from amoroute.db import insert_ignoring_conflicts, is_postgres
from amoroute.timeutil import now, utc
from edge.amocrm_api import AmoCrmAuthError, AmoCrmError
from edge.amocrm_oauth import GrantRefused, OAuthClient, OAuthError, TokenPair
from edge.log_store import metadata
from edge.settings import Settings

ROW_ID = 1
# Refresh this long before the access token expires, so no call goes out with a token
# that dies on the way.
REFRESH_MARGIN = timedelta(minutes=5)

amocrm_tokens = sa.Table(
    "amocrm_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("access_token", sa.Text, nullable=True),
    sa.Column("refresh_token", sa.Text, nullable=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("needs_reconnect", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("problem", sa.Text, nullable=True),
    # sha256 of the AMOCRM_REFRESH_TOKEN spent on the bootstrap: a restart never reuses it.
    sa.Column("bootstrap_sha256", sa.String(64), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

NEEDS_RECONNECT = prometheus_client.Gauge(
    "amoroute_amocrm_oauth_needs_reconnect",
    "1 when AmoCRM refused the stored refresh token (invalid_grant): AmoCRM API calls have "
    "stopped until an admin reconnects AmoCRM.",
    # Under gunicorn's workers, the value the latest of them saw: a reconnect clears it.
    multiprocess_mode="livemostrecent",
)
REFRESHES = prometheus_client.Counter(
    "amoroute_amocrm_oauth_refreshes_total",
    "AmoCRM OAuth token refreshes this process made, by outcome.",
    ["outcome"],
)


class NeedsReconnect(AmoCrmAuthError):
    """The stored authorisation is refused or absent: an admin must connect AmoCRM."""


@dataclass(frozen=True)
class TokenStatus:
    """What the admin and /readyz show; never a token."""

    connected: bool
    needs_reconnect: bool
    expires_at: datetime | None
    problem: str | None


class AmoCrmTokens:
    """The OAuth token source of AmoCrmClient (`current`, `after_unauthorized`); thread-safe."""

    def __init__(
        self,
        engine: Engine,
        key: Fernet,
        oauth: OAuthClient,
        bootstrap_refresh_token: str = "",
        clock: Callable[[], datetime] = now,
    ) -> None:
        self.engine = engine
        self._key = key
        self._oauth = oauth
        self._bootstrap = bootstrap_refresh_token
        self._clock = clock
        self._local = threading.Lock()
        self._cached: tuple[str, datetime] | None = None

    # --- the token source -------------------------------------------------------------------

    def current(self) -> str:
        """An access token valid for at least REFRESH_MARGIN, refreshing it if needed."""
        cached = self._cached
        if cached and self._fresh(cached[1]):
            return cached[0]
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(amocrm_tokens).where(amocrm_tokens.c.id == ROW_ID)).first()
        if row is not None and not row.needs_reconnect and row.access_token:
            expires_at = utc(row.expires_at)
            if self._fresh(expires_at):
                access = self._decrypt(row.access_token)
                self._cached = (access, expires_at)
                return access
        return self._refresh(stale=None)

    def after_unauthorized(self, stale: str) -> str:
        """AmoCRM answered 401 to `stale`: the token another process stored since, or a new one."""
        self._cached = None
        return self._refresh(stale=stale)

    # --- connecting and status ----------------------------------------------------------------

    def connect(self, code: str) -> None:
        """Exchange the callback's authorisation code and store the pair (reconnects too).
        GrantRefused: AmoCRM refused the code; OAuthError: AmoCRM could not be asked."""
        pair = self._oauth.exchange_code(code)
        with self._locked() as (conn, _row):
            self._write(conn, pair)
            conn.commit()
        self._cached = None
        NEEDS_RECONNECT.set(0)

    def status(self) -> TokenStatus:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(amocrm_tokens).where(amocrm_tokens.c.id == ROW_ID)).first()
        if row is None:
            return TokenStatus(False, False, None, None)
        NEEDS_RECONNECT.set(1 if row.needs_reconnect else 0)
        return TokenStatus(
            connected=bool(row.refresh_token) and not row.needs_reconnect,
            needs_reconnect=bool(row.needs_reconnect),
            expires_at=utc(row.expires_at) if row.expires_at else None,
            problem=row.problem,
        )

    # --- internals ---------------------------------------------------------------------------

    def _refresh(self, stale: str | None) -> str:
        # The thread lock keeps this process's threads from queueing on the database lock.
        with self._local, self._locked() as (conn, row):
            bootstrap_digest = _sha256(self._bootstrap) if self._bootstrap else None
            fresh_bootstrap = bool(bootstrap_digest and bootstrap_digest != row.bootstrap_sha256)
            if row.needs_reconnect and not fresh_bootstrap:
                NEEDS_RECONNECT.set(1)
                problem = row.problem or "the authorisation was refused"
                raise NeedsReconnect(f"AmoCRM API calls are stopped: {problem}")
            if not row.needs_reconnect and row.access_token and row.expires_at:
                access, expires_at = self._decrypt(row.access_token), utc(row.expires_at)
                # Another process refreshed while this one waited for the lock: reuse it.
                if self._fresh(expires_at) and access != stale:
                    self._cached = (access, expires_at)
                    return access
            values: dict[str, Any] = {}
            if row.refresh_token and not row.needs_reconnect:
                refresh_token = self._decrypt(row.refresh_token)
            elif fresh_bootstrap:
                refresh_token = self._bootstrap
                values["bootstrap_sha256"] = bootstrap_digest
            else:
                raise NeedsReconnect(
                    "AmoCRM is not connected: open the admin and use \"Connect AmoCRM\" (or set "
                    "AMOCRM_REFRESH_TOKEN to a fresh refresh token)"
                )
            try:
                pair = self._oauth.refresh(refresh_token)
            except GrantRefused as exc:
                REFRESHES.labels("refused").inc()
                NEEDS_RECONNECT.set(1)
                conn.execute(
                    amocrm_tokens.update()
                    .where(amocrm_tokens.c.id == ROW_ID)
                    .values(
                        access_token=None, refresh_token=None, expires_at=None,
                        needs_reconnect=True, problem=str(exc), updated_at=self._clock(),
                        **values,
                    )
                )
                conn.commit()
                raise NeedsReconnect(f"AmoCRM API calls are stopped: {exc}") from exc
            except OAuthError as exc:
                REFRESHES.labels("failed").inc()
                raise AmoCrmError(str(exc)) from exc
            self._write(conn, pair, **values)
            conn.commit()
            REFRESHES.labels("ok").inc()
            NEEDS_RECONNECT.set(0)
            self._cached = (pair.access_token, pair.expires_at)
            return pair.access_token

    @contextmanager
    def _locked(self) -> Iterator[tuple[Connection, Any]]:
        """The token row, locked until the caller commits or the block ends (rolled back)."""
        with self.engine.connect() as conn:
            if not is_postgres(self.engine):
                # SQLite locks the whole database for writing: taken now, not at the first
                # write, so a second process waits here instead of reading the old pair.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            conn.execute(
                insert_ignoring_conflicts(self.engine, amocrm_tokens).values(
                    id=ROW_ID, needs_reconnect=False, updated_at=self._clock()
                )
            )
            row = conn.execute(
                sa.select(amocrm_tokens).where(amocrm_tokens.c.id == ROW_ID).with_for_update()
            ).one()
            yield conn, row

    def _write(self, conn: Connection, pair: TokenPair, **values: Any) -> None:
        conn.execute(
            amocrm_tokens.update()
            .where(amocrm_tokens.c.id == ROW_ID)
            .values(
                access_token=self._key.encrypt(pair.access_token.encode()).decode(),
                refresh_token=self._key.encrypt(pair.refresh_token.encode()).decode(),
                expires_at=pair.expires_at,
                needs_reconnect=False,
                problem=None,
                updated_at=self._clock(),
                **values,
            )
        )

    def _decrypt(self, stored: str) -> str:
        return self._key.decrypt(stored.encode()).decode()

    def _fresh(self, expires_at: datetime) -> bool:
        return expires_at - REFRESH_MARGIN > self._clock()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def build_tokens(
    settings: Settings, engine: Engine, clock: Callable[[], datetime] = now
) -> AmoCrmTokens | None:
    """The OAuth token store for these settings; None unless AmoCRM is reached by OAuth."""
    if not settings.amocrm_oauth():
        return None
    oauth = OAuthClient(
        settings.amocrm_base_url(),
        settings.amocrm_client_id,
        settings.amocrm_client_secret.get_secret_value(),
        settings.amocrm_redirect_uri,
    )
    return AmoCrmTokens(
        engine,
        Fernet(settings.amoroute_secret_key.get_secret_value()),
        oauth,
        settings.amocrm_refresh_token.get_secret_value(),
        clock,
    )
