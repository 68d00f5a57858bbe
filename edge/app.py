"""create_app(): the edge's routes, built from its settings."""

import falcon

from amoroute.channels import channel
from amoroute.db import create_engine
from edge.amocrm_form import FormLimits
from edge.dispatch import Dispatcher
from edge.health import LivenessResource, ReadinessResource
from edge.logs import WebhookLogStore
from edge.settings import Settings
from edge.webhook import WebhookResource, WebhookTestResource


def create_app(settings: Settings | None = None) -> falcon.App:
    """The Falcon WSGI app (gunicorn calls this once per worker, after fork)."""
    settings = settings or Settings()
    logs = WebhookLogStore(create_engine(settings.edge_database_url))
    router = channel(settings.router_addr)
    webhook = WebhookResource(
        logs,
        Dispatcher(router, logs),
        settings.webhook_secret,
        settings.router_deadline_s,
        FormLimits(max_body_bytes=settings.max_body_bytes),
    )
    app = falcon.App()
    app.add_route("/webhook/amocrm", webhook)
    app.add_route("/webhook/amocrm/", webhook)
    app.add_route("/webhook/amocrm/test", WebhookTestResource())
    app.add_route("/webhook/amocrm/{secret}", webhook, suffix="secret")
    app.add_route("/healthz", LivenessResource())
    app.add_route("/readyz", ReadinessResource(logs, router))
    return app
