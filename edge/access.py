"""Who may use which edge resource: the admins' tokens, checked where a request is routed.

Deny by default. Every resource the router resolves needs `Authorization: Bearer <token>`
of an admin (ADMIN_TOKEN, the admin named `admin`, or one of the named ADMIN_TOKENS) unless
its class is marked `@public_resource` (the webhook, health, metrics, the UI's sign-in
page). The admin's name goes on the request (`req.context.admin`) for resources to record
who did what, and into the log line of every admin write; a token never does.
The decision is made on the resolved resource, never on how the path is spelled, so
`//api/admin/…`, `/%2Fapi/admin/…` and any other spelling that reaches an admin resource
meets the same check; a spelling that reaches none is a 404.
Static files (the UI's scripts and styles) are served without a resource and are public.
"""

import ipaddress
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TypeVar

import falcon

from edge.admin_tokens import AdminTokens
from edge.settings import trusted_networks

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

DISABLED = "the admin API is disabled: set ADMIN_TOKEN or ADMIN_TOKENS on the edge to enable it"
_CHALLENGE = 'Bearer realm="amoroute admin"'
_PUBLIC = "__amoroute_public__"
# Methods that change nothing: every other one is an admin write, logged with its admin.
_READS = frozenset({"GET", "HEAD", "OPTIONS"})

R = TypeVar("R", bound=type)


def public_resource(cls: R) -> R:
    """Mark a resource class as open to everyone; every other resource needs the token."""
    setattr(cls, _PUBLIC, True)
    return cls


def is_public(resource: object) -> bool:
    return getattr(type(resource), _PUBLIC, False) is True


class FailureLimiter:
    """Counts failed sign-ins per client address over a sliding window.

    In memory, per process, and bounded: an address is forgotten once its failures are older
    than the window, and at most `max_clients` addresses are kept (the longest quiet go
    first). It slows a guesser and keeps the log quiet; what makes guessing hopeless is the
    token's length (32+ characters, checked at start)."""

    def __init__(
        self,
        limit: int = 10,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.max_clients = max_clients
        # Ordered by latest failure, oldest first: expiry and eviction pop from the front.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int:
        """Seconds until `client` may try again; 0 when it is not blocked."""
        with self._lock:
            self._forget_expired()
            recent = self._failures.get(client)
            if recent is None:
                return 0
            cutoff = self.clock() - self.window_s
            while recent and recent[0] <= cutoff:
                recent.popleft()
            if len(recent) < self.limit:
                return 0
            return max(1, int(recent[0] + self.window_s - self.clock()) + 1)

    def fail(self, client: str) -> None:
        with self._lock:
            recent = self._failures.pop(client, None) or deque(maxlen=self.limit)
            recent.append(self.clock())
            self._failures[client] = recent
            self._forget_expired()
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)

    def clients(self) -> int:
        """How many addresses are remembered now."""
        with self._lock:
            self._forget_expired()
            return len(self._failures)

    def _forget_expired(self) -> None:
        cutoff = self.clock() - self.window_s
        while self._failures:
            oldest = next(iter(self._failures.values()))
            if oldest[-1] > cutoff:
                return
            self._failures.popitem(last=False)


class ClientAddress:
    """The client's address: the TCP peer, or, when the peer is a trusted proxy (an
    ingress), the nearest untrusted address in its X-Forwarded-For. Trusted proxies come
    from FORWARDED_ALLOW_IPS, the setting gunicorn reads for the same purpose."""

    def __init__(self, trusted: str) -> None:
        networks = trusted_networks(trusted)
        self.trust_all = networks is None
        self.networks = networks or []

    def _trusted(self, address: str) -> bool:
        if self.trust_all:
            return True
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def of(self, req: falcon.Request) -> str:
        peer = req.remote_addr or "unknown"
        if not self._trusted(peer):
            return peer
        hops = [hop.strip() for hop in (req.get_header("X-Forwarded-For") or "").split(",")]
        # Right to left: each trusted proxy appended the address it saw.
        for hop in reversed([h for h in hops if h]):
            if not self._trusted(hop):
                return hop[:64]
        return peer


def admin_of(req: falcon.Request) -> str:
    """The signed-in admin's name; only resources behind the token check call this."""
    name = getattr(req.context, "admin", None)
    if not name:
        raise RuntimeError(f"{req.uri_template} is public: it has no signed-in admin")
    return str(name)


class AdminSecurity:
    """Falcon middleware: the token check on every resource not marked public, a limit on
    failed sign-ins, the security headers on every answer, whatever its status, and a log
    line naming the admin of every write."""

    def __init__(
        self,
        admins: AdminTokens,
        limiter: FailureLimiter | None = None,
        client_address: ClientAddress | None = None,
    ) -> None:
        self.admins = admins
        self.limiter = limiter or FailureLimiter()
        self.client_address = client_address or ClientAddress("127.0.0.1,::1")

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict
    ) -> None:
        # Falcon calls this only once a route resolved to `resource`; unresolved paths 404.
        if not is_public(resource):
            self._authenticate(req)
            req.context.route_params = dict(params)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        resp.set_headers(SECURITY_HEADERS)
        if not is_public(resource):
            # Answers may carry customers' deals: keep them out of every cache.
            resp.set_header("Cache-Control", "no-store")
        admin = getattr(req.context, "admin", None)
        if admin and req.method not in _READS:
            # Who changed what: the route's template, never the path or a header.
            log.info(
                "admin write",
                extra={
                    "admin": admin,
                    "method": req.method,
                    "route": req.uri_template,
                    "params": getattr(req.context, "route_params", {}),
                    "status": resp.status,
                },
            )

    def _authenticate(self, req: falcon.Request) -> None:
        if not self.admins:
            raise falcon.HTTPServiceUnavailable(title="Admin disabled", description=DISABLED)
        header = req.get_header("Authorization") or ""
        scheme, _, given = header.partition(" ")
        name = self.admins.admin_of(given.strip()) if scheme.lower() == "bearer" else None
        if name is not None:
            req.context.admin = name
            return  # a correct token is never refused, whoever else guessed wrong
        client = self.client_address.of(req)
        wait = self.limiter.retry_after(client)
        if wait:
            raise falcon.HTTPTooManyRequests(
                description=f"too many failed sign-ins from {client}; try again in {wait} s",
                retry_after=wait,
            )
        if not header:
            raise falcon.HTTPUnauthorized(
                description="sign in: send the header 'Authorization: Bearer <admin token>'",
                challenges=[_CHALLENGE],
            )
        self.limiter.fail(client)
        log.warning("admin sign-in failed", extra={"client": client, "path": req.path})
        raise falcon.HTTPUnauthorized(
            description="the admin token is wrong",
            challenges=[_CHALLENGE + ', error="invalid_token"'],
        )
