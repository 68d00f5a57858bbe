"""The daily summary: real traffic, referral and router servers on ephemeral ports
hold the day's figures and the rules' chats; real notifier servers (two replicas,
one restarted) send the summary through the stand-in Telegram, once per chat."""

import threading
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine

from amoroute.callers import CALLERS, ROUTER, CallerCredentials
from amoroute.channels import channel
from amoroute.db import create_engine
from amoroute.timeutil import now, to_timestamp
from amoroute.v1 import (
    deal_pb2,
    referral_pb2,
    referral_pb2_grpc,
    traffic_pb2,
    traffic_pb2_grpc,
)
from notifier_svc import server
from notifier_svc.daily_summary import DailySummary, GrpcFigures
from notifier_svc.settings import Settings
from notifier_svc.store import NotificationStore
from tests.support.fake_telegram import FakeTelegram, Limits, RecordedRequest
from tests.support.services import Services, start_services
from tests.support.waiting import eventually

TOKEN = "123456789:AAH-summary-token"
ZONE = "Asia/Almaty"
KENESARY_CHAT, BOLAT_CHAT, DEFAULT_CHAT = "-4003000001", "-4003000002", "-4003000009"
ACCOUNT = 32145678

RULES = f"""
pipelines: [10418746]
won_status_ids: [142]
referral:
  prefix: "ref_"
  fields: [utm_source]
traffic:
  fields: [utm_source, utm_campaign]
  targetologists:
    - name: Kenesary
      patterns: ["kenesary_*"]
      telegram_chat_id: "{KENESARY_CHAT}"
    - name: Aidana
      patterns: ["aidana_*"]
    - name: Bolat
      patterns: ["bolat_*"]
      telegram_chat_id: "{BOLAT_CHAT}"
"""

FAST = Limits(private_interval_s=0.2, group_messages=5, group_window_s=1.0, bot_per_s=30)


@pytest.fixture(scope="module")
def services(make_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    """Traffic and referral services holding the day's figures, a router with the rules."""
    started = start_services(make_database)
    rules = Path(tmp_path_factory.mktemp("rules")) / "routing_rules.yaml"
    rules.write_text(RULES)
    started.start_router(routing_rules=str(rules))
    _record_the_day(started)
    yield started
    started.stop()


def _sale(lead_id: int, who: str, amount: int, campaign: str, won_at: datetime) -> traffic_pb2.Sale:
    return traffic_pb2.Sale(
        lead_id=lead_id,
        account_id=ACCOUNT,
        targetologist=who,
        amount=amount,
        utm=deal_pb2.UtmMarks(source=f"{who.lower()}_fb", campaign=campaign),
        won_at=to_timestamp(won_at),
    )


def _record_the_day(services: Services, as_router: CallerCredentials | None = None) -> None:
    """Within the last 24 hours: Kenesary 2 credited sales (one more reversed, one
    re-attributed to Bolat), Bolat 1 of his own plus that one, Aidana 1; two days
    ago a sale that is not in today's summary. Two referral conversions, one reversed."""
    hour_ago, long_ago = now() - timedelta(hours=1), now() - timedelta(days=2)
    with channel(services.addr("traffic"), as_router) as ch:
        traffic = traffic_pb2_grpc.TrafficServiceStub(ch)
        for sale in [
            _sale(1, "Kenesary", 150_000, "tp_june", hour_ago),
            _sale(2, "Kenesary", 300_000, "black_friday", hour_ago),
            _sale(3, "Kenesary", 999_000, "tp_june", hour_ago),
            _sale(4, "Kenesary", 777_000, "tp_june", hour_ago),
            _sale(5, "Bolat", 40_000, "bolat_promo", hour_ago),
            _sale(6, "Aidana", 60_000, "aidana_x", hour_ago),
            _sale(7, "Kenesary", 5_000_000, "tp_may", long_ago),
        ]:
            traffic.RecordSale(traffic_pb2.RecordSaleRequest(sale=sale))
        traffic.ReverseSale(
            traffic_pb2.ReverseSaleRequest(lead_id=3, account_id=ACCOUNT, reversed_at=to_timestamp(now()), reason="lost")
        )
        traffic.RecordSale(
            traffic_pb2.RecordSaleRequest(
                sale=_sale(4, "Bolat", 777_000, "bolat_promo", hour_ago), reattribute=True
            )
        )
    with channel(services.addr("referral"), as_router) as ch:
        referral = referral_pb2_grpc.ReferralServiceStub(ch)
        for lead_id, code, amount in [(11, "TEST123", 80_000), (12, "TEST123", 20_000), (13, "ABC", 500)]:
            referral.RecordConversion(
                referral_pb2.RecordConversionRequest(
                    conversion=referral_pb2.Conversion(
                        lead_id=lead_id, account_id=ACCOUNT, referral_code=code, amount=amount,
                        won_at=to_timestamp(hour_ago),
                    )
                )
            )
        referral.ReverseConversion(
            referral_pb2.ReverseConversionRequest(
                lead_id=13, account_id=ACCOUNT, reversed_at=to_timestamp(now()), reason="lost"
            )
        )


def _settings(services: Services, database: str, telegram: FakeTelegram, at: str) -> Settings:
    return Settings(
        notifier_database_url=database,
        telegram_bot_token=TOKEN,
        telegram_api_url=telegram.url,
        telegram_allowed_chat_ids=f"{KENESARY_CHAT},{BOLAT_CHAT}",
        telegram_default_chat_id=DEFAULT_CHAT,
        telegram_timeout_s=2.0,
        notifier_private_chat_per_s=5,
        notifier_group_chat_per_min=300,
        notifier_daily_summary_at=at,
        notifier_timezone=ZONE,
        router_addr=services.addr("router"),
        traffic_addr=services.addr("traffic"),
        referral_addr=services.addr("referral"),
    )


def _this_minute() -> str:
    """The local time now, to the minute: a summary due from a moment ago."""
    return f"{datetime.now(ZoneInfo(ZONE)):%H:%M}"


def _summaries(telegram: FakeTelegram) -> dict[str, list[RecordedRequest]]:
    found: dict[str, list[RecordedRequest]] = {}
    for r in telegram.delivered:
        if "Итоги за сутки" in r.body["text"]:
            found.setdefault(str(r.body["chat_id"]), []).append(r)
    return found


@pytest.fixture
def database(make_database) -> str:  # type: ignore[no-untyped-def]
    url = make_database("notifier_summary")
    server.upgrade_database(Settings(notifier_database_url=url))
    return url


def test_every_chat_gets_one_summary_with_two_replicas_and_a_restart(
    services: Services, database: str
) -> None:
    with FakeTelegram(token=TOKEN, limits=FAST) as telegram, ExitStack() as stack:
        settings = _settings(services, database, telegram, _this_minute())
        # Two replicas start together and race for every chat's summary.
        replicas = []
        starting = [threading.Thread(target=lambda: replicas.append(server.build(settings, port=0)))
                    for _ in range(2)]
        for thread in starting:
            thread.start()
        for thread in starting:
            thread.join()
        for running in replicas:
            stack.callback(running.stop, 0)
        chats = {KENESARY_CHAT, BOLAT_CHAT, DEFAULT_CHAT}
        assert eventually(lambda: set(_summaries(telegram)) == chats, timeout=20)
        assert all(r.summary is not None and r.summary.checked.wait(10) for r in replicas)

        # A restart: the replica looks again and finds every chat done.
        replicas[0].stop(0)
        restarted = server.build(settings, port=0)
        stack.callback(restarted.stop, 0)
        assert restarted.summary is not None and restarted.summary.checked.wait(10)
        # The outbox has nothing left to send for the day: all summaries were sent once.
        store = NotificationStore(restarted_engine := _engine(database))
        stack.callback(restarted_engine.dispose)
        assert eventually(lambda: not store.due(now() + timedelta(hours=1), 10), timeout=10)

        sent = _summaries(telegram)
        assert {chat: len(messages) for chat, messages in sent.items()} == {c: 1 for c in chats}
        kenesary = sent[KENESARY_CHAT][0].body["text"]
        assert "<b>Kenesary</b>\nПродаж: 2 · Выручка: 450\u202f000 ₸" in kenesary
        assert "1. black_friday — 1 · 300\u202f000 ₸\n2. tp_june — 1 · 150\u202f000 ₸" in kenesary
        assert "tp_may" not in kenesary and "Bolat" not in kenesary
        bolat = sent[BOLAT_CHAT][0].body["text"]
        assert "<b>Bolat</b>\nПродаж: 2 · Выручка: 817\u202f000 ₸" in bolat
        totals = sent[DEFAULT_CHAT][0].body["text"]
        assert "<b>С трафика:</b> 5 · 1\u202f327\u202f000 ₸" in totals
        assert "• Bolat — 2 · 817\u202f000 ₸" in totals
        assert "• Aidana — 1 · 60\u202f000 ₸" in totals
        assert "<b>По реферальным кодам:</b> 2 · 100\u202f000 ₸" in totals
        assert "• TEST123 — 2 · 100\u202f000 ₸" in totals and "ABC" not in totals


def _engine(database: str) -> Engine:
    return create_engine(database, 2, 0)


def test_the_summary_is_queued_at_its_time_once_per_chat(services: Services, database: str) -> None:
    """A controllable clock: nothing before the send time, every chat at it, nothing after."""
    zone = ZoneInfo(ZONE)
    send_at = time(21, 0)
    today = datetime.now(zone).date()
    clock = [datetime.combine(today, time(20, 59), tzinfo=zone)]
    engine = _engine(database)
    woken = threading.Event()
    with ExitStack() as stack:
        stack.callback(engine.dispose)
        chans = [stack.enter_context(channel(services.addr(name)))
                 for name in ("router", "traffic", "referral")]
        summary = DailySummary(
            NotificationStore(engine),
            GrpcFigures(*chans),
            send_at=send_at,
            zone=zone,
            default_chat_id=DEFAULT_CHAT,
            allowed=lambda chat_id: chat_id in {KENESARY_CHAT, BOLAT_CHAT},
            currency="KZT",
            wake=woken.set,
            clock=lambda: clock[0],
        )
        assert summary.check() == 0 and not woken.is_set()
        clock[0] = datetime.combine(today, send_at, tzinfo=zone)
        assert summary.check() == 3 and woken.is_set()
        clock[0] += timedelta(minutes=5)
        assert summary.check() == 0
        store = NotificationStore(engine)
        assert store.summarised_chats(today) == {KENESARY_CHAT, BOLAT_CHAT, DEFAULT_CHAT}
        queued = store.due(clock[0] + timedelta(days=1), 10)
        assert {r.chat_id for r in queued} == {KENESARY_CHAT, BOLAT_CHAT, DEFAULT_CHAT}
        assert all(r.lead_id < 0 and r.account_id == 0 for r in queued)



def test_with_caller_tokens_the_notifier_reads_the_figures_as_notifier(
    make_database, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    tokens = {caller: f"{caller}-summary-token-0123456789" for caller in CALLERS}
    common = {"grpc_auth_tokens": ",".join(f"{c}:{t}" for c, t in tokens.items())}
    secured = start_services(make_database, common)
    try:
        (tmp_path / "rules.yaml").write_text(RULES)
        secured.start_router(routing_rules=str(tmp_path / "rules.yaml"))
        _record_the_day(secured, CallerCredentials(token=tokens[ROUTER]))
        database = make_database("notifier_summary_secured")
        server.upgrade_database(Settings(notifier_database_url=database))
        with FakeTelegram(token=TOKEN, limits=FAST) as telegram:
            settings = Settings(**{
                **_settings(secured, database, telegram, _this_minute()).model_dump(),
                **common,
            })
            running = server.build(settings, port=0)
            try:
                chats = {KENESARY_CHAT, BOLAT_CHAT, DEFAULT_CHAT}
                assert eventually(lambda: set(_summaries(telegram)) == chats, timeout=20)
            finally:
                running.stop(0)
        assert "<b>Kenesary</b>\nПродаж: 2" in _summaries(telegram)[KENESARY_CHAT][0].body["text"]
    finally:
        secured.stop()
