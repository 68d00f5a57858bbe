"""Connecting AmoCRM by OAuth 2.0: the admin's status and "Connect AmoCRM" link
(GET /api/admin/amocrm) and the redirect AmoCRM sends the account owner back to
(GET /oauth/amocrm/callback)."""

import hmac
import logging
from typing import Any

import falcon
from cryptography.fernet import Fernet

from edge.access import public_resource
from edge.amocrm_oauth import (
    STATE_TTL_S,
    GrantRefused,
    OAuthError,
    authorize_url,
    make_state,
    state_is_valid,
)
from edge.amocrm_tokens import AmoCrmTokens
from edge.hook_health import HookHealth
from edge.settings import Settings

log = logging.getLogger(__name__)

# What GET /api/admin/amocrm and /readyz's details say about the AmoCRM API access.
CONNECTED, NEEDS_RECONNECT, NOT_CONNECTED = "connected", "needs_reconnect", "not_connected"
STATIC_TOKEN, OFF = "static_token", "off"

# The browser that asked for the "Connect AmoCRM" link keeps its `state` in this cookie,
# sent back only to the callback: a state copied elsewhere (a log, a forwarded link) is
# refused, and the callback clears the cookie, so each state connects at most once.
STATE_COOKIE = "amocrm_oauth_state"
CALLBACK_PATH = "/oauth/amocrm/callback"


class AmoCrmAccess:
    """The AmoCRM API access these settings give, for the admin and /readyz."""

    def __init__(self, settings: Settings, tokens: AmoCrmTokens | None) -> None:
        self.tokens = tokens
        self.client_id = settings.amocrm_client_id
        self.static = settings.amocrm_configured() and tokens is None
        self.key = (
            Fernet(settings.amoroute_secret_key.get_secret_value()) if tokens is not None else None
        )
        domain = settings.amocrm_domain
        self.account_host = f"{domain}.amocrm.ru".lower() if domain else None

    def new_state(self) -> str | None:
        """A fresh `state` for the "Connect AmoCRM" link; None when OAuth is off."""
        return make_state(self.key) if self.tokens is not None and self.key is not None else None

    def status(self, state: str | None = None) -> dict[str, Any]:
        """{status, expires_at, problem, authorize_url}: never a token. The link is
        given only with a `state` (from new_state())."""
        if self.tokens is None or self.key is None:
            return {"status": STATIC_TOKEN if self.static else OFF, "expires_at": None,
                    "problem": None, "authorize_url": None}
        current = self.tokens.status()
        if current.needs_reconnect:
            status = NEEDS_RECONNECT
        else:
            status = CONNECTED if current.connected else NOT_CONNECTED
        return {
            "status": status,
            "expires_at": current.expires_at.isoformat() if current.expires_at else None,
            "problem": current.problem,
            "authorize_url": authorize_url(self.client_id, state) if state else None,
        }

    def readiness_detail(self) -> str:
        """One line for /readyz: the API access does not gate readiness (webhooks still
        flow), but an operator must see that reconciliation and lead fetch stopped."""
        try:
            status = self.status()
        except Exception as exc:  # the database check reports the cause
            return f"unknown: {type(exc).__name__}"
        if status["status"] == NEEDS_RECONNECT:
            return f"needs reconnect: {status['problem']}; reconnect AmoCRM in the admin"
        if status["status"] == NOT_CONNECTED:
            return "not connected: use \"Connect AmoCRM\" in the admin"
        return str(status["status"])


class AmoCrmStatusResource:
    """GET /api/admin/amocrm: connected / needs_reconnect / not_connected / static_token / off,
    with the "Connect AmoCRM" link when OAuth is configured; with `health`, the account, the
    webhook's state, the last reconciliation and the invalid answers of the last 2 hours."""

    def __init__(self, access: AmoCrmAccess, health: HookHealth | None = None) -> None:
        self.access = access
        self.health = health

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        state = self.access.new_state()
        status = self.access.status(state)
        if self.health is not None:
            status.update(self.health.card())
        resp.media = status
        resp.cache_control = ["no-store"]  # the link carries a fresh state
        if state is not None:
            resp.set_cookie(
                STATE_COOKIE,
                state,
                max_age=STATE_TTL_S,
                path=CALLBACK_PATH,
                # Over plain HTTP (make run) a Secure cookie would not come back.
                secure=req.forwarded_scheme == "https",
                http_only=True,
                same_site="Lax",  # sent on AmoCRM's top-level redirect back here
            )


@public_resource  # AmoCRM redirects the account owner's browser here; `state` guards it
class OAuthCallbackResource:
    """GET /oauth/amocrm/callback?code=...&referer=...&state=...: store the tokens."""

    def __init__(self, access: AmoCrmAccess) -> None:
        self.access = access

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        tokens, key = self.access.tokens, self.access.key
        if tokens is None or key is None:
            raise falcon.HTTPNotFound(
                description="AmoCRM OAuth is not configured: set AMOCRM_CLIENT_ID and its peers"
            )
        state = req.get_param("state") or ""
        # Cleared whatever the outcome: a state is tried once.
        resp.unset_cookie(STATE_COOKIE, path=CALLBACK_PATH)
        if not state_is_valid(key, state):
            raise falcon.HTTPBadRequest(
                description="state: missing, forged or expired; start again from "
                "\"Connect AmoCRM\" in the admin"
            )
        if not hmac.compare_digest(req.cookies.get(STATE_COOKIE, "").encode(), state.encode()):
            raise falcon.HTTPBadRequest(
                description="state: not the one this browser was given, or used already; "
                "start again from \"Connect AmoCRM\" in the admin, in the same browser"
            )
        code = req.get_param("code") or ""
        if not code:
            error = req.get_param("error") or "no code"
            raise falcon.HTTPBadRequest(
                description=f"code: AmoCRM sent none ({error[:100]}); access was not granted"
            )
        referer = (req.get_param("referer") or "").lower()
        if self.access.account_host and referer and referer != self.access.account_host:
            raise falcon.HTTPBadRequest(
                description=f"referer: {referer[:100]!r} is not the configured account "
                f"{self.access.account_host}"
            )
        try:
            tokens.connect(code)
        except GrantRefused as exc:
            raise falcon.HTTPBadRequest(
                title="AmoCRM did not connect", description=f"code: {exc}"
            ) from None
        except OAuthError as exc:
            raise falcon.HTTPBadGateway(
                title="AmoCRM did not connect", description=str(exc)
            ) from None
        log.info("AmoCRM connected by OAuth")
        resp.status = falcon.HTTP_303
        resp.location = "/admin/"
