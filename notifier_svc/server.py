"""Wiring: database, Telegram client, outbox, servicer, gRPC server."""

import dataclasses
from collections.abc import Callable
from pathlib import Path

from amoroute.callers import EDGE, NOTIFIER, OPERATOR, ROUTER
from amoroute.channels import channel
from amoroute.db import create_engine, migrate
from amoroute.grpc_server import Registration, RunningServer, start_server
from amoroute.v1 import notifier_pb2, notifier_pb2_grpc
from notifier_svc.daily_summary import DailySummary, GrpcFigures
from notifier_svc.outbox import Outbox
from notifier_svc.service import NotifierService
from notifier_svc.settings import Settings
from notifier_svc.store import NotificationStore
from notifier_svc.telegram import TelegramClient

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_notifier"

# Who may call each method (amoroute/grpc_auth.py): only the router announces
# sales; the edge reads for its dashboards.
CALLERS = {
    "Notify": (ROUTER,),
    "BatchNotify": (ROUTER,),
    "ListNotifications": (EDGE, OPERATOR),
    "ListChatMoves": (EDGE, OPERATOR),
}


def upgrade_database(settings: Settings) -> None:
    migrate(settings.notifier_database_url, MIGRATIONS, VERSION_TABLE)


@dataclasses.dataclass
class NotifierServer(RunningServer):
    """The running gRPC server plus what must stop after it: the outbox sweeper,
    the Telegram connection pool and the database engine."""

    closers: list[Callable[[], None]] = dataclasses.field(default_factory=list)
    # The daily summary's scheduler, when NOTIFIER_DAILY_SUMMARY_AT is set.
    summary: DailySummary | None = None

    def stop(self, grace: float) -> None:
        # In-flight calls finish first: they still store rows and wake the outbox.
        super().stop(grace)
        for close in self.closers:
            close()


def build(settings: Settings, port: int | None = None) -> NotifierServer:
    """Start NotifierService on `port` (settings' port when None; 0 = any free port),
    with its outbox sweeper when a bot token is set."""
    if settings.summary_time() is not None:
        # GRPC_AUTH_TOKENS without a notifier: entry stops the start before anything runs.
        settings.caller_credentials(NOTIFIER)
    engine = create_engine(
        settings.notifier_database_url, settings.db_pool_size, settings.db_max_overflow
    )
    store = NotificationStore(engine)
    telegram, outbox = None, None
    summary: DailySummary | None = None
    if settings.telegram_bot_token.get_secret_value():
        telegram = TelegramClient(
            settings.telegram_api_url,
            settings.telegram_bot_token.get_secret_value(),
            settings.telegram_timeout_s,
        )
        outbox = Outbox(
            store,
            telegram,
            timeout_s=settings.telegram_timeout_s,
            limits=settings.chat_limits(),
            currency=settings.amocrm_currency,
        )
    try:
        running = start_server(
            [
                Registration(
                    NotifierService(store, outbox, settings),
                    notifier_pb2_grpc.add_NotifierServiceServicer_to_server,
                    notifier_pb2.DESCRIPTOR.services_by_name["NotifierService"].full_name,
                    CALLERS,
                )
            ],
            port=settings.notifier_port if port is None else port,
            settings=settings,
        )
    except BaseException:
        if telegram is not None:
            telegram.close()
        engine.dispose()
        raise
    closers: list[Callable[[], None]] = []
    if outbox is not None and telegram is not None:
        outbox.start()
        closers += [
            lambda: outbox.stop(settings.telegram_timeout_s + 1),
            telegram.close,
        ]
        summary, stop_summary = _start_summary(settings, store, outbox)
        closers = stop_summary + closers
    closers.append(engine.dispose)
    fields = {f.name: getattr(running, f.name) for f in dataclasses.fields(RunningServer)}
    return NotifierServer(**fields, closers=closers, summary=summary)


def _start_summary(
    settings: Settings, store: NotificationStore, outbox: Outbox
) -> tuple[DailySummary | None, list[Callable[[], None]]]:
    """Start the daily summary when NOTIFIER_DAILY_SUMMARY_AT is set; returns it
    and what stops it (before the outbox, which sends what it queued)."""
    send_at = settings.summary_time()
    if send_at is None:
        return None, []
    calls_as = settings.caller_credentials(NOTIFIER)
    channels = [
        channel(settings.router_addr, calls_as),
        channel(settings.traffic_addr, calls_as),
        channel(settings.referral_addr, calls_as),
    ]
    allowed = settings.allowed_chat_ids()
    summary = DailySummary(
        store,
        GrpcFigures(*channels),
        send_at=send_at,
        zone=settings.zone(),
        default_chat_id=settings.telegram_default_chat_id,
        allowed=lambda chat_id: chat_id in allowed or store.is_moved_to(chat_id),
        currency=settings.amocrm_currency,
        wake=outbox.wake,
    )
    summary.start()
    return summary, [summary.stop, *(ch.close for ch in channels)]
