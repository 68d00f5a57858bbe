"""Every environment variable the edge and its worker read."""

from amoroute.settings import CommonSettings


class Settings(CommonSettings):
    edge_port: int = 8080
    edge_database_url: str = "sqlite:///var/edge.sqlite3"
    router_addr: str = "localhost:50051"
    referral_addr: str = "localhost:50052"
    traffic_addr: str = "localhost:50053"
    notifier_addr: str = "localhost:50054"
    # With a secret, only POST /webhook/amocrm/<secret> is accepted.
    webhook_secret: str = ""
    # The admin API and UI refuse everyone while this is unset.
    admin_token: str = ""
    amocrm_domain: str = ""
    # Time the webhook answer may spend routing before it answers anyway; the
    # rest stays pending for the worker. AmoCRM gives up after 2 s.
    router_deadline_s: float = 1.2
    max_body_bytes: int = 1_048_576
    # Retry worker: how often it looks for due events, and how many it takes at once.
    worker_poll_s: float = 1.0
    worker_batch_size: int = 100
    # Deadline of one RouteDeal call made by the worker (no AmoCRM waiting on it).
    worker_route_timeout_s: float = 10.0
