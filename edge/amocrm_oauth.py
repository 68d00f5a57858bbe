"""AmoCRM's OAuth 2.0 token endpoint: exchange an authorisation code, refresh a token pair.

`POST <account>/oauth2/access_token` with a JSON body (client_id, client_secret, grant_type,
code or refresh_token, redirect_uri) answers {token_type, expires_in, access_token,
refresh_token}. Each refresh token works once: a second use, or a revoked one, is refused
with 400/401 (`invalid_grant`), and only a person re-authorising the integration helps.

A small explicit client rather than an OAuth library (Authlib's httpx client): the part that
matters here, one refresh at a time across every process with the rotated pair written in
the same database transaction, has to live around the call, and AmoCRM's endpoint takes a
JSON body rather than the form body the generic clients send.

Tokens and the client secret travel only in request bodies: never in a URL, an exception
message or a log line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from cryptography.fernet import Fernet, InvalidToken

from amoroute.backoff import Backoff
from amoroute.timeutil import now

log = logging.getLogger(__name__)

TOKEN_PATH = "/oauth2/access_token"
# Where an account owner grants the integration access; AmoCRM then redirects to the
# integration's redirect URI with ?code=...&referer=<account host>&state=...
AUTHORIZE_URL = "https://www.amocrm.ru/oauth"
# The authorisation link is valid this long: the state it carries expires with it.
STATE_TTL_S = 3600
_STATE_PURPOSE = b"amocrm-oauth-state"
# The token endpoint is retried on network failures, 429 and 5xx only.
RETRIES = Backoff(first_s=1.0, max_s=10.0, tries=4)


class OAuthError(Exception):
    """The token endpoint did not give tokens; the message says what to do."""


class GrantRefused(OAuthError):
    """AmoCRM refused the code or refresh token (invalid_grant): re-authorise the integration."""


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_at: datetime

    def __repr__(self) -> str:  # never show a token, even in a traceback's locals
        return f"TokenPair(expires_at={self.expires_at.isoformat()})"


def make_state(key: Fernet) -> str:
    """A signed, expiring value for the authorisation link's `state`."""
    return key.encrypt(_STATE_PURPOSE).decode()


def state_is_valid(key: Fernet, state: str) -> bool:
    """True when `state` is one this deployment signed within the last STATE_TTL_S."""
    try:
        return key.decrypt(state.encode(), ttl=STATE_TTL_S) == _STATE_PURPOSE
    except (InvalidToken, ValueError):
        return False


def authorize_url(client_id: str, state: str) -> str:
    """The "Connect AmoCRM" link for the account owner."""
    query = {"client_id": client_id, "state": state, "mode": "post_message"}
    return f"{AUTHORIZE_URL}?{urlencode(query)}"


class OAuthClient:
    """Talks to one account's token endpoint (`base_url`, e.g. https://<subdomain>.amocrm.ru)."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        *,
        timeout_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._url = base_url.rstrip("/") + TOKEN_PATH
        self._client_id = client_id
        self._client_secret = client_secret
        self._redirect_uri = redirect_uri
        self._sleep = sleep
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=False)

    def exchange_code(self, code: str) -> TokenPair:
        """Tokens for an authorisation code from the callback."""
        return self._grant({"grant_type": "authorization_code", "code": code})

    def refresh(self, refresh_token: str) -> TokenPair:
        """A new pair for a refresh token; the old refresh token is spent either way."""
        return self._grant({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def close(self) -> None:
        self._http.close()

    def _grant(self, fields: dict[str, str]) -> TokenPair:
        body = {
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "redirect_uri": self._redirect_uri,
            **fields,
        }
        grant = fields["grant_type"]
        problem = ""
        for attempt in range(RETRIES.tries):
            if attempt:
                delay = RETRIES.delay_s(attempt)
                log.warning(
                    "AmoCRM token endpoint (%s): %s; retry %d/%d in %.1f s",
                    grant, problem, attempt, RETRIES.tries - 1, delay,
                )
                self._sleep(delay)
            try:
                response = self._http.post(self._url, json=body)
            except httpx.TransportError as exc:
                problem = f"cannot reach AmoCRM ({type(exc).__name__})"
                continue
            status = response.status_code
            if 200 <= status < 300:
                return _pair(response)
            if status in (400, 401, 403):
                raise GrantRefused(
                    f"AmoCRM refused the {grant} grant ({status} {_error(response)}): the "
                    "authorisation is spent or revoked; reconnect AmoCRM from the admin"
                )
            if status == 429 or status >= 500:
                problem = f"{status} {_error(response)}"
                continue
            raise OAuthError(
                f"AmoCRM's token endpoint answered {status} ({_error(response)}); check "
                "AMOCRM_API_URL / AMOCRM_DOMAIN"
            )
        raise OAuthError(
            f"AmoCRM's token endpoint failed {RETRIES.tries} times, last with {problem}; "
            "try again later"
        )


def _pair(response: httpx.Response) -> TokenPair:
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise OAuthError("AmoCRM's token endpoint answered without a JSON object")
    access, refresh, expires_in = (
        body.get("access_token"), body.get("refresh_token"), body.get("expires_in")
    )
    if not (isinstance(access, str) and access and isinstance(refresh, str) and refresh):
        raise OAuthError("AmoCRM's token endpoint answered without access_token/refresh_token")
    if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
        raise OAuthError(f"AmoCRM's token endpoint answered expires_in={expires_in!r}")
    return TokenPair(access, refresh, now() + timedelta(seconds=expires_in))


def _error(response: httpx.Response) -> str:
    """The OAuth error or problem+json title/hint in one line (never a token: AmoCRM's
    errors do not echo the request)."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "no details"
    if not isinstance(body, dict):
        return response.reason_phrase or "no details"
    parts = [
        str(body[key])
        for key in ("error", "title", "hint", "detail")
        if isinstance(body.get(key), str) and body[key]
    ]
    text = ": ".join(dict.fromkeys(parts)) or response.reason_phrase or "no details"
    return text[:300]
