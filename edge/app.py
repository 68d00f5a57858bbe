"""create_app(): the edge's routes, built from its settings."""

import atexit
from typing import Any

import falcon

from amoroute import __version__
from amoroute.callers import EDGE
from amoroute.channels import channel
from amoroute.db import create_engine
from edge.access import AdminSecurity, ClientAddress
from edge.admin_amocrm import CustomFieldsResource, PipelinesResource, WebhookReenableResource
from edge.admin_jobs import BulkReplayResource, JobsResource
from edge.admin_logs import WebhookFlowResource, WebhookLogsResource, WebhookStatsResource
from edge.admin_page import STATIC_DIR, AdminPageResource
from edge.admin_reattribution import ReattributionPreviewResource, ReattributionResource
from edge.admin_reconcile import ReconcileResource
from edge.admin_rules import RulesResource, RulesVersionsResource
from edge.admin_sales import PartnerResource, ReferralSalesResource, TrafficSalesResource
from edge.admin_sales_series import (
    DailyResource,
    SalesListResource,
    referral_ledger,
    traffic_ledger,
)
from edge.admin_telegram import ChatMoveRulesResource, TelegramChatsResource
from edge.amocrm_connect import AmoCrmAccess, AmoCrmStatusResource, OAuthCallbackResource
from edge.amocrm_form import FormLimits
from edge.amocrm_tokens import build_tokens
from edge.dispatch import Dispatcher
from edge.health import LivenessResource, ReadinessResource
from edge.hook_health import HookHealth, InvalidAnswerRecorder, InvalidAnswerStore
from edge.job_store import JobStore
from edge.log_store import WebhookLogStore
from edge.log_writer import LogWriter
from edge.observability import MetricsResource, RequestContext, unhandled_error
from edge.openapi import OpenApiResource
from edge.reconcile import build_reconciler
from edge.review_api import DismissalsResource, OwnerSuggester, UnknownSalesResource
from edge.review_store import ReviewStore
from edge.routing_queue import RoutingQueue
from edge.settings import Settings
from edge.webhook import WebhookResource, WebhookTestResource, count_outcomes


def create_app(settings: Settings | None = None) -> falcon.App:
    """The Falcon WSGI app (gunicorn calls this once per worker, after fork)."""
    settings = settings or Settings()
    logs = WebhookLogStore(
        create_engine(settings.edge_database_url, settings.db_pool_size, settings.db_max_overflow)
    )
    calls_as = settings.caller_credentials(EDGE)
    router = channel(settings.router_addr, calls_as)
    dispatcher = Dispatcher(router, logs, lead_data_available=settings.amocrm_configured())
    routing = RoutingQueue(
        dispatcher,
        settings.router_deadline_s,
        on_outcomes=count_outcomes,
        # Under a burst beyond what this process can route, the worker takes
        # the rest at once instead of after the intake lease.
        on_overflow=logs.make_due,
    )
    # On a graceful stop, route what is queued; whatever is left the worker routes.
    atexit.register(routing.close)
    webhook = WebhookResource(
        LogWriter(logs),
        routing,
        settings.webhook_secret.get_secret_value(),
        FormLimits(max_body_bytes=settings.max_body_bytes),
        expected_subdomain=settings.amocrm_domain,
    )
    tokens = build_tokens(settings, logs.engine)
    amocrm = AmoCrmAccess(settings, tokens)
    answers = InvalidAnswerStore(logs.engine)
    reconciler = build_reconciler(settings, logs, dispatcher, tokens)
    health = HookHealth(
        logs,
        answers,
        reconciler,
        settings.amocrm_domain,
        settings.edge_public_url,
        settings.webhook_secret.get_secret_value(),
    )
    admins = settings.admins()
    middleware: list[Any] = [
        RequestContext(InvalidAnswerRecorder(answers)),
        AdminSecurity(admins, client_address=ClientAddress(settings.forwarded_allow_ips)),
    ]
    app = falcon.App(middleware=middleware)
    app.add_error_handler(Exception, unhandled_error)
    app.add_route("/webhook/amocrm", webhook)
    app.add_route("/webhook/amocrm/", webhook)
    app.add_route("/webhook/amocrm/test", WebhookTestResource())
    app.add_route("/webhook/amocrm/{secret}", webhook, suffix="secret")
    app.add_route("/healthz", LivenessResource())
    app.add_route("/readyz", ReadinessResource(logs, router, amocrm))
    app.add_route("/metrics", MetricsResource())
    app.add_route("/oauth/amocrm/callback", OAuthCallbackResource(amocrm))
    app.add_route("/api/admin/amocrm", AmoCrmStatusResource(amocrm, health))
    app.add_route("/api/admin/amocrm/webhook/reenable", WebhookReenableResource(health))
    app.add_route("/api/admin/amocrm/pipelines", PipelinesResource(reconciler))
    app.add_route("/api/admin/amocrm/custom-fields", CustomFieldsResource(reconciler))

    admin_logs = WebhookLogsResource(
        logs, dispatcher, settings.router_deadline_s, settings.amocrm_domain
    )
    app.add_route("/api/admin/webhook-logs", admin_logs)
    app.add_route("/api/admin/webhook-logs/{log_id:int}", admin_logs, suffix="one")
    app.add_route("/api/admin/webhook-logs/{log_id:int}/replay", admin_logs, suffix="replay")
    jobs = JobStore(logs.engine)
    app.add_route("/api/admin/webhook-logs/replay", BulkReplayResource(logs, jobs))
    admin_jobs = JobsResource(jobs)
    app.add_route("/api/admin/jobs", admin_jobs)
    app.add_route("/api/admin/jobs/{job_id:int}", admin_jobs, suffix="one")
    app.add_route(
        "/api/admin/webhook-stats",
        WebhookStatsResource(logs, settings.retention(), settings.retention_interval_s),
    )
    app.add_route("/api/admin/webhook-stats/timeseries", WebhookFlowResource(logs))
    app.add_route("/api/admin/openapi.json", OpenApiResource(__version__))
    app.add_route("/api/admin/reconcile", ReconcileResource(reconciler))
    traffic = channel(settings.traffic_addr, calls_as)
    app.add_route(
        "/api/admin/sales/traffic",
        TrafficSalesResource(traffic, settings.traffic_addr, settings.amocrm_currency),
    )
    traffic_sales = traffic_ledger(traffic, settings.traffic_addr)
    app.add_route(
        "/api/admin/sales/traffic/daily",
        DailyResource(traffic_sales, settings.amocrm_currency),
    )
    app.add_route(
        "/api/admin/sales/traffic/sales",
        SalesListResource(traffic_sales, settings.amocrm_domain),
    )
    referral = channel(settings.referral_addr, calls_as)
    app.add_route(
        "/api/admin/sales/referral",
        ReferralSalesResource(referral, settings.referral_addr, settings.amocrm_currency),
    )
    referral_sales = referral_ledger(referral, settings.referral_addr)
    app.add_route(
        "/api/admin/sales/referral/daily",
        DailyResource(referral_sales, settings.amocrm_currency),
    )
    app.add_route(
        "/api/admin/sales/referral/sales",
        SalesListResource(referral_sales, settings.amocrm_domain),
    )
    app.add_route(
        "/api/admin/partners/{referral_code}", PartnerResource(referral, settings.referral_addr)
    )
    review = ReviewStore(logs.engine)
    suggester = OwnerSuggester(
        router,
        settings.router_addr,
        channel(settings.referral_addr, calls_as),
        settings.referral_addr,
    )
    app.add_route("/api/admin/review/unknown", UnknownSalesResource(review, suggester))
    app.add_route("/api/admin/review/unknown/dismissals", DismissalsResource(review))
    app.add_route("/api/admin/rules", RulesResource(router, settings.router_addr))
    app.add_route(
        "/api/admin/rules/versions", RulesVersionsResource(router, settings.router_addr)
    )
    app.add_route(
        "/api/admin/reattribution/preview",
        ReattributionPreviewResource(logs, router, settings.router_addr, settings.amocrm_domain),
    )
    notifier = channel(settings.notifier_addr, calls_as)
    chats = (notifier, settings.notifier_addr, router, settings.router_addr)
    app.add_route("/api/admin/telegram/chats", TelegramChatsResource(*chats))
    app.add_route(
        "/api/admin/telegram/chat-moves/update-rules", ChatMoveRulesResource(*chats)
    )
    reattribution = ReattributionResource(
        logs, jobs, router, settings.router_addr, settings.amocrm_domain
    )
    app.add_route("/api/admin/reattribution", reattribution)
    app.add_route("/api/admin/reattribution/{job_id:int}", reattribution, suffix="one")
    admin_page = AdminPageResource(enabled=bool(admins), time_zone=settings.admin_time_zone)
    app.add_route("/admin", admin_page, suffix="bare")
    app.add_route("/admin/", admin_page)
    app.add_static_route("/admin/static", STATIC_DIR)
    return app
