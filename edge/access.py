"""Who may use which edge resource: the admin token, checked where a request is routed.

Deny by default. Every resource the router resolves needs `Authorization: Bearer
$ADMIN_TOKEN` unless its class is marked `@public_resource` (the webhook, health, metrics,
the UI's sign-in page). The decision is made on the resolved resource, never on how the
path is spelled, so `//api/admin/…`, `/%2Fapi/admin/…` and any other spelling that reaches
an admin resource meets the same check; a spelling that reaches none is a 404.
Static files (the UI's scripts and styles) are served without a resource and are public.
"""

import hmac
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

import falcon

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

DISABLED = "the admin API is disabled: set ADMIN_TOKEN on the edge to enable it"
_CHALLENGE = 'Bearer realm="amoroute admin"'
_PUBLIC = "__amoroute_public__"

R = TypeVar("R", bound=type)


def public_resource(cls: R) -> R:
    """Mark a resource class as open to everyone; every other resource needs the token."""
    setattr(cls, _PUBLIC, True)
    return cls


def is_public(resource: object) -> bool:
    return getattr(type(resource), _PUBLIC, False) is True


class FailureLimiter:
    """Counts failed sign-ins per client address over a sliding window.

    In memory, per process: with N gunicorn workers an address gets at most N × `limit`
    guesses per window, still far too few to guess a 16+ character token."""

    def __init__(
        self, limit: int = 10, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int:
        """Seconds until `client` may try again; 0 when it is not blocked."""
        with self._lock:
            recent = self._recent(client)
            if len(recent) < self.limit:
                return 0
            return max(1, int(recent[0] + self.window_s - self.clock()) + 1)

    def fail(self, client: str) -> None:
        with self._lock:
            self._recent(client).append(self.clock())
            if len(self._failures) > 10_000:  # bound memory under a spray of addresses
                for key in [k for k, v in self._failures.items() if not v]:
                    del self._failures[key]

    def _recent(self, client: str) -> deque[float]:
        recent = self._failures.setdefault(client, deque())
        cutoff = self.clock() - self.window_s
        while recent and recent[0] <= cutoff:
            recent.popleft()
        return recent


class AdminSecurity:
    """Falcon middleware: the token check on every resource not marked public, a limit on
    failed sign-ins, and the security headers on every answer, whatever its status."""

    def __init__(self, token: str, limiter: FailureLimiter | None = None) -> None:
        self.token = token.encode()
        self.limiter = limiter or FailureLimiter()

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict
    ) -> None:
        # Falcon calls this only once a route resolved to `resource`; unresolved paths 404.
        if not is_public(resource):
            self._authenticate(req)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        resp.set_headers(SECURITY_HEADERS)
        if not is_public(resource):
            # Answers may carry customers' deals: keep them out of every cache.
            resp.set_header("Cache-Control", "no-store")

    def _authenticate(self, req: falcon.Request) -> None:
        if not self.token:
            raise falcon.HTTPServiceUnavailable(title="Admin disabled", description=DISABLED)
        client = req.remote_addr or "unknown"
        wait = self.limiter.retry_after(client)
        if wait:
            raise falcon.HTTPTooManyRequests(
                description=f"too many failed sign-ins from {client}; try again in {wait} s",
                retry_after=wait,
            )
        header = req.get_header("Authorization") or ""
        scheme, _, given = header.partition(" ")
        if not header:
            raise falcon.HTTPUnauthorized(
                description="sign in: send the header 'Authorization: Bearer <ADMIN_TOKEN>'",
                challenges=[_CHALLENGE],
            )
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self.token
        ):
            self.limiter.fail(client)
            log.warning("admin sign-in failed", extra={"client": client, "path": req.path})
            raise falcon.HTTPUnauthorized(
                description="the admin token is wrong",
                challenges=[_CHALLENGE + ', error="invalid_token"'],
            )
