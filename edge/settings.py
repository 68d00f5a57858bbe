"""Every environment variable the edge and its worker read."""

import ipaddress
from typing import Literal, Self
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, field_validator, model_validator

from amoroute.settings import CommonSettings
from edge.admin_tokens import AdminTokens, check_length
from edge.retention import RetentionPolicy

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(text: str) -> list[Network] | None:
    """FORWARDED_ALLOW_IPS as networks; None when it is "*" (every peer is trusted).
    ValueError names an entry that is not an IP address or CIDR."""
    if text.strip() == "*":
        return None
    networks = []
    for item in (item.strip() for item in text.split(",")):
        if not item or item == "*":
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"FORWARDED_ALLOW_IPS: {item!r} is not an IP address or CIDR"
            ) from None
    return networks


class Settings(CommonSettings):
    edge_port: int = 8080
    edge_database_url: str = "sqlite:///var/edge.sqlite3"
    router_addr: str = "localhost:50051"
    referral_addr: str = "localhost:50052"
    traffic_addr: str = "localhost:50053"
    notifier_addr: str = "localhost:50054"
    # With a secret, only POST /webhook/amocrm/<secret> is accepted.
    webhook_secret: SecretStr = SecretStr("")
    # The edge's public address (https://<host>), where AmoCRM sends the webhook: the admin's
    # "Re-enable the webhook" registers <EDGE_PUBLIC_URL>/webhook/amocrm/<WEBHOOK_SECRET>.
    # Unset: the URL of the hook AmoCRM has.
    edge_public_url: str = ""
    # The admin API and UI refuse everyone while neither this nor ADMIN_TOKENS is set;
    # a token shorter than MIN_ADMIN_TOKEN characters is refused at start. It signs in
    # as the admin named "admin".
    admin_token: SecretStr = SecretStr("")
    # Named admins, "alice:<token>,bob:<token>": every change records who made it.
    admin_tokens: SecretStr = Field(default=SecretStr(""), repr=False)
    # Peers trusted to say the client's address in X-Forwarded-For (an ingress): IPs or
    # CIDRs, comma-separated, or "*". gunicorn reads the same variable.
    forwarded_allow_ips: str = "127.0.0.1,::1"
    # AmoCRM account subdomain, e.g. "onaiagencykz".
    amocrm_domain: str = ""
    # ISO 4217 code of the account's deal amounts (e.g. KZT), shown with the sales
    # figures; empty shows the amounts without a unit.
    amocrm_currency: str = Field(default="", pattern=r"^([A-Z]{3})?$")
    # API v4 access (a long-lived token). Without a token there is no lead fetch
    # and no reconciliation, and start-up says so.
    amocrm_access_token: SecretStr = SecretStr("")
    # Default: https://<AMOCRM_DOMAIN>.amocrm.ru
    amocrm_api_url: str = ""
    # OAuth 2.0 integration (instead of a long-lived token): the integration's id, secret
    # and redirect URI (https://<edge>/oauth/amocrm/callback) as AmoCRM lists them.
    amocrm_client_id: str = ""
    amocrm_client_secret: SecretStr = SecretStr("")
    amocrm_redirect_uri: str = ""
    # A refresh token to start with, used once when no token is stored yet; afterwards the
    # stored (rotated) one rules.
    amocrm_refresh_token: SecretStr = SecretStr("")
    # Fernet key (32 url-safe base64 bytes) the stored OAuth tokens are encrypted with.
    amoroute_secret_key: SecretStr = SecretStr("")
    # Reconciliation against the API: how often, how far back the first pass
    # looks, and how much each pass overlaps the previous one.
    reconcile_interval_s: int = 300
    reconcile_first_lookback_s: int = 7 * 86400
    reconcile_overlap_s: int = 3600
    # Where reconciliation learns what happened to deals: "events" (AmoCRM's events log:
    # moves into won and out of it) or "leads" (leads now won; for accounts whose events
    # log is incomplete).
    reconcile_source: Literal["events", "leads"] = "events"
    # Seconds without any AmoCRM API call once AmoCRM blocks the integration (a 403 after
    # 429s).
    amocrm_block_pause_s: float = Field(default=900.0, gt=0, le=86400)
    # Time the router may take over one batch of events routed after their
    # webhook was answered (and over a replay); what it does not finish in
    # time stays pending for the worker.
    router_deadline_s: float = 5.0
    max_body_bytes: int = 1_048_576
    # Retry worker: how often it looks for due events, and how many it takes at once.
    worker_poll_s: float = 1.0
    worker_batch_size: int = 500
    # Deadline of one RouteDeal call made by the worker (no AmoCRM waiting on it).
    worker_route_timeout_s: float = 10.0
    # Bulk replay jobs: events replayed per second at most, so live webhooks keep their latency.
    bulk_replay_rate: float = Field(default=50.0, gt=0, le=10_000)
    # webhook_logs retention (edge/retention.py): settled events older than this many days
    # are removed with their attempts; those that did not end in success after the error
    # retention (at least as long); one worker runs it every RETENTION_INTERVAL_S.
    webhook_log_retention_days: int = Field(default=90, ge=1, le=36_500)
    webhook_log_error_retention_days: int = Field(default=180, ge=1, le=36_500)
    retention_interval_s: int = Field(default=3600, ge=60, le=7 * 86400)
    # The admin UI's default time zone (an IANA name such as Asia/Almaty); empty: each
    # operator's browser's. An operator may pick another in the UI.
    admin_time_zone: str = ""

    @field_validator("admin_time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        value = value.strip()
        if value:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"ADMIN_TIME_ZONE: {value!r} is not an IANA time zone such as Asia/Almaty"
                ) from None
        return value

    @field_validator("admin_token")
    @classmethod
    def _long_admin_token(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value():
            check_length("ADMIN_TOKEN", value.get_secret_value())
        return value

    @field_validator("admin_tokens")
    @classmethod
    def _named_admin_tokens(cls, value: SecretStr) -> SecretStr:
        AdminTokens.parse(value.get_secret_value())  # a bad entry stops the start, named
        return value

    @model_validator(mode="after")
    def _admins_apart_from_admin_token(self) -> Self:
        self.admins()  # ADMIN_TOKENS may not reuse ADMIN_TOKEN's name or token
        return self

    def admins(self) -> AdminTokens:
        """Every admin who may sign in: ADMIN_TOKEN as `admin`, and ADMIN_TOKENS."""
        return AdminTokens.parse(
            self.admin_tokens.get_secret_value(), self.admin_token.get_secret_value()
        )

    def secret_values(self) -> list[str]:
        # Each admin's token on its own, so a token is hidden wherever it appears.
        return list(dict.fromkeys(super().secret_values() + self.admins().tokens()))

    @field_validator("edge_public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if value:
            url = urlsplit(value)
            if url.scheme not in ("http", "https") or not url.hostname or url.query:
                raise ValueError(
                    f"EDGE_PUBLIC_URL: {value!r} is not the edge's address, e.g. "
                    "https://amoroute.example.com"
                )
        return value.rstrip("/")

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_list(cls, value: str) -> str:
        trusted_networks(value)  # a bad entry stops the start, named
        return value

    @field_validator("amoroute_secret_key")
    @classmethod
    def _fernet_key(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value():
            try:
                Fernet(value.get_secret_value())
            except ValueError:
                raise ValueError(
                    "AMOROUTE_SECRET_KEY is not a Fernet key (32 url-safe base64-encoded "
                    "bytes): make one with `python -c 'from cryptography.fernet import "
                    "Fernet; print(Fernet.generate_key().decode())'`"
                ) from None
        return value

    @model_validator(mode="after")
    def _errors_kept_at_least_as_long(self) -> Self:
        if self.webhook_log_error_retention_days < self.webhook_log_retention_days:
            raise ValueError(
                "WEBHOOK_LOG_ERROR_RETENTION_DAYS "
                f"({self.webhook_log_error_retention_days}) must be at least "
                f"WEBHOOK_LOG_RETENTION_DAYS ({self.webhook_log_retention_days}): events that "
                "did not succeed are kept at least as long as the others"
            )
        return self

    def retention(self) -> RetentionPolicy:
        """How long webhook_logs keeps its events."""
        return RetentionPolicy(
            self.webhook_log_retention_days, self.webhook_log_error_retention_days
        )

    @model_validator(mode="after")
    def _oauth_complete(self) -> Self:
        if self.amocrm_client_id and not (
            self.amocrm_client_secret.get_secret_value()
            and self.amocrm_redirect_uri
            and self.amoroute_secret_key.get_secret_value()
        ):
            raise ValueError(
                "AMOCRM_CLIENT_ID is set: AMOCRM_CLIENT_SECRET, AMOCRM_REDIRECT_URI and "
                "AMOROUTE_SECRET_KEY must be set too"
            )
        return self

    def amocrm_base_url(self) -> str:
        if self.amocrm_api_url:
            return self.amocrm_api_url
        return f"https://{self.amocrm_domain}.amocrm.ru" if self.amocrm_domain else ""

    def amocrm_oauth(self) -> bool:
        """AmoCRM is reached through OAuth 2.0 (stored, rotating tokens), not a static token."""
        return bool(
            self.amocrm_client_id
            and self.amocrm_base_url()
            and not self.amocrm_access_token.get_secret_value()
        )

    def amocrm_configured(self) -> bool:
        """The AmoCRM API can be used: lead fetch and reconciliation are on."""
        return bool(self.amocrm_base_url()) and (
            bool(self.amocrm_access_token.get_secret_value()) or self.amocrm_oauth()
        )
