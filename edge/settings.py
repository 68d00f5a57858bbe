"""Every environment variable the edge and its worker read."""

from pydantic import SecretStr

from amoroute.settings import CommonSettings


class Settings(CommonSettings):
    edge_port: int = 8080
    edge_database_url: str = "sqlite:///var/edge.sqlite3"
    router_addr: str = "localhost:50051"
    referral_addr: str = "localhost:50052"
    traffic_addr: str = "localhost:50053"
    notifier_addr: str = "localhost:50054"
    # With a secret, only POST /webhook/amocrm/<secret> is accepted.
    webhook_secret: SecretStr = SecretStr("")
    # The admin API and UI refuse everyone while this is unset.
    admin_token: SecretStr = SecretStr("")
    # AmoCRM account subdomain, e.g. "onaiagencykz".
    amocrm_domain: str = ""
    # API v4 access (a long-lived token). Without a token there is no lead fetch
    # and no reconciliation, and start-up says so.
    amocrm_access_token: SecretStr = SecretStr("")
    # Default: https://<AMOCRM_DOMAIN>.amocrm.ru
    amocrm_api_url: str = ""
    # Reconciliation against the API: how often, how far back the first pass
    # looks, and how much each pass overlaps the previous one.
    reconcile_interval_s: int = 300
    reconcile_first_lookback_s: int = 7 * 86400
    reconcile_overlap_s: int = 3600
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

    def amocrm_base_url(self) -> str:
        if self.amocrm_api_url:
            return self.amocrm_api_url
        return f"https://{self.amocrm_domain}.amocrm.ru" if self.amocrm_domain else ""

    def amocrm_configured(self) -> bool:
        """The AmoCRM API can be used: lead fetch and reconciliation are on."""
        return bool(self.amocrm_access_token.get_secret_value() and self.amocrm_base_url())
