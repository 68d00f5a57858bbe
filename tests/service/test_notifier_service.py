"""NotifierService on an ephemeral port against a real database and a fake Bot API."""

import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from amoroute.channels import channel
from amoroute.db import create_engine
from amoroute.timeutil import now
from amoroute.v1 import deal_pb2, notifier_pb2, notifier_pb2_grpc
from notifier_svc import server
from notifier_svc.outbox import SWEEP_CHATS, Outbox, retry_delay
from notifier_svc.pacing import ChatLimits
from notifier_svc.settings import Settings, describe
from notifier_svc.store import NewNotification, NotificationRow, NotificationStore, Status
from notifier_svc.telegram import Outcome, TelegramClient
from tests.support.fake_telegram import FakeTelegram, RecordedRequest, Reply

TOKEN = "123456789:AAH-test-token"
DEFAULT_CHAT = "-1001000000001"
# The chats the routing rules name, as TELEGRAM_ALLOWED_CHAT_IDS: each test posts to
# its own chat, -100<lead id>, so Telegram's per-chat pace stays out of its way.
ALLOWED_CHATS = ",".join(f"-100{lead}" for lead in range(5000, 10000))

PENDING = notifier_pb2.NOTIFICATION_STATUS_PENDING
SENT = notifier_pb2.NOTIFICATION_STATUS_SENT
NOT_SENT = notifier_pb2.NOTIFICATION_STATUS_NOT_SENT
FAILED = notifier_pb2.NOTIFICATION_STATUS_FAILED

Stub = notifier_pb2_grpc.NotifierServiceStub
# No pause between two sends, for tests of what one send does.
NO_PACE = ChatLimits(private_chat_per_s=1e6, group_chat_per_min=1e9, bot_per_s=1e6)


@contextmanager
def _serving(settings: Settings) -> Iterator[Stub]:
    running = server.build(settings, port=0)
    try:
        with channel(f"localhost:{running.port}") as ch:
            yield notifier_pb2_grpc.NotifierServiceStub(ch)
    finally:
        running.stop(0)


def _migrated(url: str) -> str:
    server.upgrade_database(Settings(notifier_database_url=url))
    return url


@pytest.fixture(scope="module")
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram(token=TOKEN) as fake:
        yield fake


@pytest.fixture(scope="module")
def stub(make_database, telegram: FakeTelegram) -> Iterator[Stub]:  # type: ignore[no-untyped-def]
    """The notifier as deployed: bot token, default chat, outbox sweeping."""
    settings = Settings(
        notifier_database_url=_migrated(make_database("notifier")),
        telegram_bot_token=TOKEN,
        telegram_api_url=telegram.url,
        telegram_default_chat_id=DEFAULT_CHAT,
        telegram_allowed_chat_ids=ALLOWED_CHATS,
        telegram_timeout_s=2.0,
        amocrm_domain="onaiagencykz",
    )
    with _serving(settings) as s:
        yield s


@pytest.fixture(scope="module")
def quiet_database(make_database) -> str:  # type: ignore[no-untyped-def]
    """A second database that no running outbox sweeps."""
    return _migrated(make_database("notifier_quiet"))


def _request(lead_id: int, **fields: Any) -> notifier_pb2.NotifyRequest:
    values: dict[str, Any] = {
        "lead_id": lead_id,
        "account_id": 32145678,
        "account_subdomain": "onaiagencykz",
        "deal_name": "Курс «Таргетолог PRO»",
        "amount": 150000,
        "targetologist": "Kenesary",
        "utm": deal_pb2.UtmMarks(source="kenesary_fb", campaign="tp_june"),
        "chat_id": f"-100{lead_id}",  # a chat per test: Telegram's per-chat pace stays out
    }
    values.update(fields)
    return notifier_pb2.NotifyRequest(**values)


def _calls_for(telegram: FakeTelegram, lead_id: int) -> list[RecordedRequest]:
    return [r for r in telegram.requests if f'/leads/detail/{lead_id}"' in r.body.get("text", "")]


def _wait_for_status(stub: Stub, lead_id: int, status: int) -> notifier_pb2.Notification:
    deadline = time.monotonic() + 10
    while True:
        listed = stub.ListNotifications(notifier_pb2.ListNotificationsRequest(lead_id=lead_id))
        if listed.notifications and listed.notifications[0].status == status:
            return listed.notifications[0]
        assert time.monotonic() < deadline, f"lead {lead_id} still {listed.notifications}"
        time.sleep(0.05)


def test_notify_queues_the_message_and_answers_before_telegram_is_called(
    stub: Stub, telegram: FakeTelegram
) -> None:
    reply = stub.Notify(_request(5001, deal_name="Курс <b>PRO</b> & co"))
    assert not reply.duplicate
    assert (reply.notification.status, reply.notification.attempts) == (PENDING, 0)
    assert (reply.notification.error, reply.notification.sent_at.seconds) == ("", 0)
    sent = _wait_for_status(stub, 5001, SENT)
    assert (sent.attempts, sent.error) == (1, "")
    assert sent.sent_at.seconds > 0


def test_notify_sends_the_escaped_html_message_once_to_the_chat(
    stub: Stub, telegram: FakeTelegram
) -> None:
    reply = stub.Notify(_request(5011, deal_name="Курс <b>PRO</b> & co"))
    _wait_for_status(stub, 5011, SENT)
    [call] = _calls_for(telegram, 5011)
    assert (call.method, call.token) == ("sendMessage", TOKEN)
    assert call.body["chat_id"] == "-1005011"
    assert call.body["parse_mode"] == "HTML"
    assert call.body["disable_web_page_preview"] is True
    assert "Курс &lt;b&gt;PRO&lt;/b&gt; &amp; co" in call.body["text"]
    assert "150\u202f000 ₸" in call.body["text"]
    assert call.body["text"] == reply.notification.text


def test_repeated_notify_answers_duplicate_and_sends_nothing_more(
    stub: Stub, telegram: FakeTelegram
) -> None:
    first = stub.Notify(_request(5002))
    _wait_for_status(stub, 5002, SENT)
    again = stub.Notify(_request(5002, amount=1, deal_name="changed"))
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.notification.text == first.notification.text
    assert again.notification.status == SENT
    assert len(_calls_for(telegram, 5002)) == 1


def test_a_chat_no_rule_or_setting_names_is_refused_naming_chat_id(stub: Stub) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.Notify(_request(5020, chat_id="-100999000999"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("chat_id: -100999000999 is not a chat")
    assert "TELEGRAM_ALLOWED_CHAT_IDS" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.BatchNotify(
            notifier_pb2.BatchNotifyRequest(
                requests=[_request(5021), _request(5022, chat_id="@somebody_elses")]
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("requests[1].chat_id: @somebody_elses is not a chat")
    assert list(stub.ListNotifications(notifier_pb2.ListNotificationsRequest(lead_id=5021)).notifications) == []


def test_allowed_chat_ids_must_each_be_a_chat_id() -> None:
    with pytest.raises(ValueError, match=r"entry 2 \('-100x'\) must be a numeric Telegram chat id"):
        Settings(telegram_allowed_chat_ids="-1001,-100x")


def test_default_chat_is_used_when_the_request_names_none(
    stub: Stub, telegram: FakeTelegram
) -> None:
    reply = stub.Notify(_request(5003, chat_id=""))
    _wait_for_status(stub, 5003, SENT)
    assert reply.notification.chat_id == DEFAULT_CHAT
    assert [c.body["chat_id"] for c in _calls_for(telegram, 5003)] == [DEFAULT_CHAT]


def test_rate_limited_message_is_delivered_exactly_once_by_the_outbox(
    stub: Stub, telegram: FakeTelegram
) -> None:
    telegram.reply_next(Reply.too_many_requests(retry_after=1), Reply.too_many_requests(1))
    reply = stub.Notify(_request(5004))
    assert reply.notification.status == PENDING
    sent = _wait_for_status(stub, 5004, SENT)
    assert sent.attempts == 3
    assert sent.error == ""
    assert [c.status for c in _calls_for(telegram, 5004)] == [429, 429, 200]


def test_message_telegram_refuses_is_failed_with_its_description(
    stub: Stub, telegram: FakeTelegram
) -> None:
    telegram.reply_next(Reply.bad_request("Bad Request: chat not found"))
    stub.Notify(_request(5005))
    failed = _wait_for_status(stub, 5005, FAILED)
    assert failed.attempts == 1
    assert "Bad Request: chat not found" in failed.error
    assert len(_calls_for(telegram, 5005)) == 1


def test_messages_to_a_busy_chat_are_all_delivered_once(stub: Stub, telegram: FakeTelegram) -> None:
    leads = range(5101, 5104)
    for lead in leads:  # one chat: Telegram allows about one message a second
        stub.Notify(_request(lead, chat_id="-1005100"))
    for lead in leads:
        _wait_for_status(stub, lead, SENT)
        assert len(_calls_for(telegram, lead)) == 1


def test_batch_notify_answers_in_order_and_delivers_each_new_lead_once(
    stub: Stub, telegram: FakeTelegram
) -> None:
    stub.Notify(_request(5301))
    _wait_for_status(stub, 5301, SENT)
    batch = [
        _request(5302),
        _request(5301, amount=1),  # announced before
        _request(5303),
        _request(5302, deal_name="changed"),  # earlier in this batch
    ]
    reply = stub.BatchNotify(notifier_pb2.BatchNotifyRequest(requests=batch))
    assert [(r.notification.lead_id, r.duplicate) for r in reply.responses] == [
        (5302, False),
        (5301, True),
        (5303, False),
        (5302, True),
    ]
    assert reply.responses[3].notification == reply.responses[0].notification
    assert "150\u202f000 ₸" in reply.responses[1].notification.text  # as first stored
    for lead in (5302, 5303):
        _wait_for_status(stub, lead, SENT)
    assert [len(_calls_for(telegram, lead)) for lead in (5301, 5302, 5303)] == [1, 1, 1]


def test_batch_notify_in_outcome_view_answers_duplicates_without_the_notifications(
    stub: Stub,
) -> None:
    batch = [_request(5321), _request(5321, amount=1)]
    reply = stub.BatchNotify(
        notifier_pb2.BatchNotifyRequest(requests=batch, view=deal_pb2.WRITE_VIEW_OUTCOME)
    )
    assert [(r.HasField("notification"), r.duplicate) for r in reply.responses] == [
        (False, False),
        (False, True),
    ]
    [stored] = stub.ListNotifications(
        notifier_pb2.ListNotificationsRequest(lead_id=5321)
    ).notifications
    assert "150\u202f000 ₸" in stored.text
    # Sent before the test ends: a later test counts the requests Telegram gets.
    _wait_for_status(stub, 5321, SENT)


def test_batch_with_a_bad_request_is_rejected_naming_it_and_stores_nothing(stub: Stub) -> None:
    batch = [_request(5311), _request(5312, amount=-1), _request(0)]
    with pytest.raises(grpc.RpcError) as err:
        stub.BatchNotify(notifier_pb2.BatchNotifyRequest(requests=batch))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("requests[1].amount: ")
    for lead in (5311, 5312):
        listed = stub.ListNotifications(notifier_pb2.ListNotificationsRequest(lead_id=lead))
        assert list(listed.notifications) == []


def test_batch_of_more_than_500_is_rejected_naming_requests(stub: Stub) -> None:
    batch = [_request(lead) for lead in range(5400, 5901)]
    with pytest.raises(grpc.RpcError) as err:
        stub.BatchNotify(notifier_pb2.BatchNotifyRequest(requests=batch))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("requests: ")
    listed = stub.ListNotifications(notifier_pb2.ListNotificationsRequest(lead_id=5400))
    assert list(listed.notifications) == []


def test_empty_batch_answers_no_responses(stub: Stub) -> None:
    assert list(stub.BatchNotify(notifier_pb2.BatchNotifyRequest()).responses) == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"lead_id": 0}, "lead_id"),
        ({"lead_id": -7}, "lead_id"),
        ({"amount": -1}, "amount"),
        ({"amount": 10**15 + 1}, "amount"),
        ({"account_id": -1}, "account_id"),
        ({"deal_name": "x" * 10_001}, "deal_name"),
        ({"targetologist": "K" * 201}, "targetologist"),
        ({"utm": deal_pb2.UtmMarks(campaign="c" * 10_001)}, "utm.campaign"),
        ({"chat_id": "general chat"}, "chat_id"),
    ],
)
def test_bad_request_is_rejected_with_invalid_argument_naming_the_field(
    stub: Stub, telegram: FakeTelegram, fields: dict[str, Any], field: str
) -> None:
    before = len(telegram.requests)
    with pytest.raises(grpc.RpcError) as err:
        stub.Notify(_request(**{"lead_id": 5200, **fields}))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(f"{field}: ")
    assert len(telegram.requests) == before


def test_without_a_bot_token_notification_is_kept_as_not_sent_and_nothing_is_sent(
    quiet_database: str, telegram: FakeTelegram
) -> None:
    settings = Settings(
        notifier_database_url=quiet_database,
        telegram_bot_token="",
        telegram_api_url=telegram.url,
        telegram_default_chat_id=DEFAULT_CHAT,
    )
    assert any("TELEGRAM_BOT_TOKEN is not set" in line for line in describe(settings))
    with _serving(settings) as quiet:
        # No bot, nothing leaves: the chat is not checked.
        reply = quiet.Notify(_request(6001, chat_id="-100999000999"))
    assert reply.notification.status == NOT_SENT
    assert reply.notification.error == "TELEGRAM_BOT_TOKEN is not set"
    assert "6001" in reply.notification.text
    # Only this lead's calls: the module's outbox may still be retrying others.
    assert _calls_for(telegram, 6001) == []


def test_without_any_chat_notification_is_failed_naming_the_targetologist(
    quiet_database: str, telegram: FakeTelegram
) -> None:
    settings = Settings(
        notifier_database_url=quiet_database,
        telegram_bot_token=TOKEN,
        telegram_api_url=telegram.url,
        telegram_default_chat_id="",
    )
    with _serving(settings) as no_chat:
        reply = no_chat.Notify(_request(6002, chat_id="", targetologist="Aidana"))
    assert reply.notification.status == FAILED
    assert reply.notification.error == (
        "no Telegram chat configured for targetologist Aidana and no TELEGRAM_DEFAULT_CHAT_ID"
    )
    # Only this lead's calls: the module's outbox may still be retrying others.
    assert _calls_for(telegram, 6002) == []


def test_list_notifications_pages_without_gaps_or_repeats_and_filters_by_lead(
    quiet_database: str,
) -> None:
    settings = Settings(notifier_database_url=quiet_database, telegram_bot_token="")
    with _serving(settings) as quiet:
        for lead in range(7001, 7008):
            quiet.Notify(_request(lead))
        seen, token = [], ""
        while True:
            page = quiet.ListNotifications(
                notifier_pb2.ListNotificationsRequest(page_size=3, page_token=token)
            )
            seen += [n.lead_id for n in page.notifications if 7000 < n.lead_id < 7100]
            token = page.next_page_token
            if not token:
                break
        one = quiet.ListNotifications(notifier_pb2.ListNotificationsRequest(lead_id=7003))
        with pytest.raises(grpc.RpcError) as err:
            quiet.ListNotifications(notifier_pb2.ListNotificationsRequest(page_token="garbage!"))
    assert seen == list(range(7007, 7000, -1))
    assert [n.lead_id for n in one.notifications] == [7003]
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in err.value.details()


def test_batch_of_500_is_kept_in_order_without_a_bot_token(quiet_database: str) -> None:
    settings = Settings(notifier_database_url=quiet_database, telegram_bot_token="")
    leads = range(7101, 7601)
    with _serving(settings) as quiet:
        reply = quiet.BatchNotify(
            notifier_pb2.BatchNotifyRequest(requests=[_request(lead) for lead in leads])
        )
    assert [r.notification.lead_id for r in reply.responses] == list(leads)
    assert {(r.notification.status, r.duplicate) for r in reply.responses} == {(NOT_SENT, False)}


def test_a_batch_is_stored_with_one_insert_and_one_select_of_the_repeats(
    quiet_database: str,
) -> None:
    engine = create_engine(quiet_database)
    store = NotificationStore(engine)
    statements: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement.split()[0].upper())

    def batch(leads: range) -> list[NewNotification]:
        return [NewNotification(1, lead, "-1", "hi", Status.NOT_SENT) for lead in leads]

    first = store.create_many(batch(range(9001, 9501)))
    new_only = list(statements)
    statements.clear()
    second = store.create_many(batch(range(9002, 9502)))
    engine.dispose()
    # The SELECT first looks up the batch's chats among the chats Telegram moved.
    assert (new_only, statements) == (["SELECT", "INSERT"], ["SELECT", "INSERT", "SELECT"])
    assert [d for _, d in first] == [False] * 500
    assert [d for _, d in second] == [True] * 499 + [False]
    assert [r.lead_id for r, _ in second] == list(range(9002, 9502))
    assert second[0][0] == first[1][0]


def test_concurrent_batches_sharing_leads_store_each_lead_once(quiet_database: str) -> None:
    engine = create_engine(quiet_database)
    store = NotificationStore(engine)

    def race(batch: list[NewNotification]) -> list[int]:
        """The batch and its reverse at once; how many times each lead was new."""
        both = threading.Barrier(2)

        def store_batch(items: list[NewNotification]) -> list[bool]:
            both.wait()
            return [not duplicate for _, duplicate in store.create_many(items)]

        with ThreadPoolExecutor(2) as pool:
            forward, backward = pool.map(store_batch, [batch, batch[::-1]])
        return [a + b for a, b in zip(forward, backward[::-1], strict=True)]

    # A deadlock is a matter of timing: many tries.
    results = [
        race([NewNotification(2, lead, "-1", "hi", Status.NOT_SENT) for lead in range(s, s + 300)])
        for s in range(20_000, 26_000, 300)
    ]
    engine.dispose()
    assert all(news == [1] * 300 for news in results)


def test_a_woken_outbox_sends_a_queued_row_before_its_next_sweep(
    quiet_database: str, telegram: FakeTelegram
) -> None:
    swept = threading.Event()

    class Store(NotificationStore):
        def due(self, at: datetime, limit: int) -> list[NotificationRow]:
            rows = super().due(at, limit)
            swept.set()
            return rows

    engine = create_engine(quiet_database)
    store = Store(engine)
    client = TelegramClient(telegram.url, TOKEN, timeout_s=2.0)
    outbox = Outbox(store, client, timeout_s=2.0, interval_s=3600)  # no sweep but the first
    outbox.start()
    try:
        assert swept.wait(10)
        row, _ = store.create(
            account_id=1,
            lead_id=8003,
            chat_id="-1008003",
            text="woken",
            status=Status.PENDING,
            next_attempt_at=now(),
        )
        outbox.wake()
        deadline = time.monotonic() + 10
        while store.get(row.id).status is Status.PENDING and time.monotonic() < deadline:
            time.sleep(0.05)
        final = store.get(row.id)
    finally:
        outbox.stop()
        client.close()
        engine.dispose()
    assert (final.status, final.attempts) == (Status.SENT, 1)
    assert [r.body["text"] for r in telegram.requests if r.body.get("chat_id") == "-1008003"] == [
        "woken"
    ]


def test_a_busy_chats_backlog_does_not_hold_up_another_chat(
    make_database,
    telegram: FakeTelegram,  # type: ignore[no-untyped-def]
) -> None:
    engine = create_engine(_migrated(make_database("notifier_burst")))
    store = NotificationStore(engine)
    waiting_since = now() - timedelta(minutes=10)
    # A campaign burst: more of one chat's rows than a sweep serves chats.
    store.create_many(
        [
            NewNotification(1, lead, "-1009001", f"burst {lead}", Status.PENDING, "", waiting_since)
            for lead in range(9001, 9001 + 3 * SWEEP_CHATS)
        ]
    )
    quiet, _ = store.create(
        account_id=1,
        lead_id=9500,
        chat_id="-1009500",
        text="quiet chat",
        status=Status.PENDING,
        next_attempt_at=now(),
    )
    client = TelegramClient(telegram.url, TOKEN, timeout_s=2.0)
    outbox = Outbox(store, client, timeout_s=2.0, limits=ChatLimits(group_chat_per_min=1 / 60))
    tried = outbox.sweep()
    client.close()
    by_chat = [
        r.body["chat_id"]
        for r in telegram.requests
        if r.body.get("text", "").startswith(("burst", "quiet"))
    ]
    final = store.get(quiet.id)
    engine.dispose()
    # One message per chat: the busy chat's oldest, and the quiet chat's at once.
    assert (tried, sorted(by_chat), final.status) == (2, ["-1009001", "-1009500"], Status.SENT)


def test_outbox_gives_up_after_eight_attempts_with_the_reason(quiet_database: str) -> None:
    engine = create_engine(quiet_database)
    store = NotificationStore(engine)
    with FakeTelegram(token=TOKEN) as failing:
        failing.reply_next(*[Reply.server_error(502)] * 10)
        client = TelegramClient(failing.url, TOKEN, timeout_s=2.0)
        outbox = Outbox(
            store, client, timeout_s=2.0, backoff_base_s=0.0, limits=NO_PACE
        )
        row, _ = store.create(
            account_id=1,
            lead_id=8001,
            chat_id="-1008001",
            text="hi",
            status=Status.PENDING,
            next_attempt_at=now(),
        )
        for _ in range(20):
            if store.get(row.id).status != Status.PENDING:
                break
            outbox.sweep()
        client.close()
        calls = len(failing.requests)
    engine.dispose()
    final = store.get(row.id)
    assert (final.status, final.attempts, calls) == (Status.FAILED, 8, 8)
    assert final.error.startswith("gave up after 8 attempts: Telegram error (502)")


def test_a_chat_is_claimed_by_one_sender_only(quiet_database: str) -> None:
    engine = create_engine(quiet_database)
    store = NotificationStore(engine)
    lease = now().replace(year=now().year + 1)
    claims = [store.claim_chat("-1008002", now(), lease), store.claim_chat("-1008002", now(), lease)]
    engine.dispose()
    assert claims[0] is not None and claims[1] is None


def test_bot_token_stays_out_of_errors_and_logs(
    telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    caplog.set_level(logging.DEBUG)
    unreachable = TelegramClient(closed, TOKEN, timeout_s=1.0)
    reachable = TelegramClient(telegram.url, TOKEN, timeout_s=2.0)
    down = unreachable.send_message("-1", "hi")
    up = reachable.send_message("-1", "hi")
    unreachable.close()
    reachable.close()
    assert (down.outcome, up.outcome) == (Outcome.RETRY, Outcome.SENT)
    assert TOKEN not in down.error
    assert TOKEN not in caplog.text
    assert "/bot<redacted>/sendMessage" in caplog.text


@pytest.mark.parametrize(
    ("attempts", "retry_after", "delay"),
    [(1, None, 2.0), (2, None, 4.0), (7, None, 128.0), (30, None, 600.0), (2, 1.0, 1.0)],
)
def test_retries_back_off_exponentially_unless_telegram_says_when(
    attempts: int, retry_after: float | None, delay: float
) -> None:
    assert retry_delay(attempts, retry_after) == delay


def test_limits_pace_private_chats_per_second_and_groups_per_minute() -> None:
    limits = ChatLimits()  # Telegram's values
    assert limits.chat_interval_s("123456789") == 1.0
    assert limits.chat_interval_s("-1001234567890") == 3.0
    assert limits.chat_interval_s("@onai_sales") == 3.0
    assert limits.bot_interval_s == pytest.approx(1 / 30)
    short = Settings(
        notifier_private_chat_per_s=5, notifier_group_chat_per_min=120, notifier_bot_per_s=50
    ).chat_limits()
    assert (short.chat_interval_s("42"), short.chat_interval_s("-42")) == (0.2, 0.5)
