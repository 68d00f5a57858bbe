"""The notifier in a burst and against chats it cannot reach: real notifier servers on
ephemeral ports, a real database, and the stand-in Telegram enforcing its limits
with 429s. Limits are shortened by settings (and in the stand-in alike), so the
tests stay fast; the figures at Telegram's own limits are the bench's
(python -m bench.notifier_burst)."""

import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import prometheus_client
import pytest

from amoroute.channels import channel
from amoroute.v1 import deal_pb2, notifier_pb2, notifier_pb2_grpc
from notifier_svc import server
from notifier_svc.message import MAX_MESSAGE_LEN
from notifier_svc.settings import Settings
from tests.support.databases import backend
from tests.support.fake_telegram import FakeTelegram, Limits, RecordedRequest, Reply
from tests.support.waiting import eventually

TOKEN = "123456789:AAH-burst-token"
GROUP = "-1002000000001"
OTHER_GROUP = "-1002000000002"
KICKED = "-1002000000003"
MISSING = "-1002000000004"
PRIVATE = "987654321"
CHATS = (GROUP, OTHER_GROUP, KICKED, MISSING, PRIVATE)

# The stand-in's limits and the notifier's, both short: a group takes 2 messages in
# any second (the notifier paces it at 120 a minute), a private chat one per 0.2 s.
FAST = Limits(private_interval_s=0.2, group_messages=2, group_window_s=1.0, bot_per_s=30)
FAST_SETTINGS: dict[str, Any] = {
    "notifier_private_chat_per_s": 5,
    "notifier_group_chat_per_min": 120,
    "notifier_bot_per_s": 30,
}

PENDING = notifier_pb2.NOTIFICATION_STATUS_PENDING
SENT = notifier_pb2.NOTIFICATION_STATUS_SENT
FAILED = notifier_pb2.NOTIFICATION_STATUS_FAILED
CHAT_UNREACHABLE = notifier_pb2.NOTIFICATION_FAILURE_CHAT_UNREACHABLE

Stub = notifier_pb2_grpc.NotifierServiceStub
_DEAL_LINK = re.compile(r"/leads/detail/(\d+)\"")


def _settings(database: str, telegram: FakeTelegram, **overrides: Any) -> Settings:
    return Settings(
        notifier_database_url=database,
        telegram_bot_token=TOKEN,
        telegram_api_url=telegram.url,
        telegram_allowed_chat_ids=",".join(CHATS),
        telegram_timeout_s=2.0,
        amocrm_domain="onaiagencykz",
        **{**FAST_SETTINGS, **overrides},
    )


@contextmanager
def _notifiers(settings: Settings, replicas: int = 1) -> Iterator[list[Stub]]:
    """`replicas` notifier servers on one database, each with its own outbox."""
    with ExitStack() as stack:
        stubs = []
        for _ in range(replicas):
            running = server.build(settings, port=0)
            stack.callback(running.stop, 0)
            ch = stack.enter_context(channel(f"localhost:{running.port}"))
            stubs.append(notifier_pb2_grpc.NotifierServiceStub(ch))
        yield stubs


@pytest.fixture
def database(make_database) -> str:  # type: ignore[no-untyped-def]
    url = make_database("notifier_burst")
    server.upgrade_database(Settings(notifier_database_url=url))
    return url


def _sale(lead_id: int, chat_id: str, **fields: Any) -> notifier_pb2.NotifyRequest:
    values: dict[str, Any] = {
        "lead_id": lead_id,
        "account_id": 32145678,
        "account_subdomain": "onaiagencykz",
        "deal_name": f"Курс «Таргетолог PRO» #{lead_id}",
        "amount": 1000 + lead_id % 1000,
        "targetologist": "Kenesary",
        "utm": deal_pb2.UtmMarks(source="kenesary_fb", campaign="tp_june"),
        "chat_id": chat_id,
    }
    values.update(fields)
    return notifier_pb2.NotifyRequest(**values)


def _listed(stub: Stub, leads: range) -> list[notifier_pb2.Notification]:
    listed = [
        n
        for n in stub.ListNotifications(
            notifier_pb2.ListNotificationsRequest(page_size=1000)
        ).notifications
        if n.lead_id in leads
    ]
    return sorted(listed, key=lambda n: n.lead_id)


def _settled(stub: Stub, leads: range, timeout: float = 30.0) -> list[notifier_pb2.Notification]:
    """The leads' notifications once none is pending any more."""
    final = eventually(
        lambda: (lambda ns: ns if len(ns) == len(leads) and PENDING not in {n.status for n in ns}
                 else None)(_listed(stub, leads)),
        timeout=timeout,
    )
    assert final, f"still pending: {[(n.lead_id, n.status) for n in _listed(stub, leads)]}"
    return list(final)


def _messages_to(telegram: FakeTelegram, chat_id: str) -> list[RecordedRequest]:
    return [r for r in telegram.requests if r.body.get("chat_id") == chat_id]


def _leads_in(message: RecordedRequest) -> list[int]:
    return [int(lead) for lead in _DEAL_LINK.findall(message.body["text"])]


def _most_in_any_window(arrivals: list[float], window_s: float) -> int:
    """The most messages that arrived within any `window_s` (half-open, as Telegram counts)."""
    return max(
        (sum(1 for b in arrivals if a - window_s < b <= a) for a in arrivals), default=0
    )


def _metric(name: str, **labels: str) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0


def _assert_each_sale_announced_once(delivered: list[RecordedRequest], leads: range) -> None:
    announced = Counter(lead for m in delivered for lead in _leads_in(m))
    assert sorted(announced) == list(leads)
    assert set(announced.values()) == {1}


def _assert_digest_adds_up(message: RecordedRequest) -> None:
    """A digest's header counts its sales and totals their amounts."""
    text = message.body["text"]
    leads = _leads_in(message)
    header = re.match(r"💰 <b>Новые продажи с трафика: (\d+)</b>\n<b>Всего:</b> ([\d\u202f]+) ₸", text)
    assert header, text[:200]
    assert int(header[1]) == len(leads)
    assert int(header[2].replace("\u202f", "")) == sum(1000 + lead % 1000 for lead in leads)


def test_a_burst_to_a_group_goes_out_as_digests_within_the_group_limit(
    database: str,
) -> None:
    leads = range(100, 160)
    with FakeTelegram(token=TOKEN, limits=FAST) as telegram:
        with _notifiers(_settings(database, telegram)) as [stub]:
            stub.Notify(_sale(leads[0], GROUP))  # a lone sale, before the burst
            _settled(stub, leads[:1])
            for lead in leads[1:]:  # one Notify per sale, as a busy router sends them
                stub.Notify(_sale(lead, GROUP))
            final = _settled(stub, leads)
        calls = _messages_to(telegram, GROUP)
    assert {n.status for n in final} == {SENT}
    assert [c.status for c in calls] == [200] * len(calls)  # no 429
    _assert_each_sale_announced_once(calls, leads)
    assert len(calls) < len(leads) / 2  # most went out in digests
    assert _most_in_any_window([c.at for c in calls], FAST.group_window_s) <= FAST.group_messages
    digests = [c for c in calls if len(_leads_in(c)) > 1]
    assert digests
    for digest in digests:
        _assert_digest_adds_up(digest)
        together = {n.telegram_message_id for n in final if n.lead_id in _leads_in(digest)}
        assert len(together) == 1 and together != {0}
    # The lone sale went as its own message, as a single sale always did.
    assert calls[0].body["text"] == final[0].text
    assert "<b>Сделка:</b> Курс «Таргетолог PRO» #100" in calls[0].body["text"]


def test_a_digest_longer_than_a_message_is_split_between_whole_sales(database: str) -> None:
    leads = range(200, 224)
    long_fields = {
        "targetologist": "К" * 200,
        "utm": deal_pb2.UtmMarks(source="s" * 300, campaign="c&" * 300),
    }
    with FakeTelegram(token=TOKEN, limits=FAST) as telegram:
        with _notifiers(_settings(database, telegram)) as [stub]:
            # One batch: every sale waits for the same slot, more than a message holds.
            stub.BatchNotify(
                notifier_pb2.BatchNotifyRequest(
                    requests=[_sale(lead, OTHER_GROUP, **long_fields) for lead in leads]
                )
            )
            final = _settled(stub, leads)
        calls = _messages_to(telegram, OTHER_GROUP)
    assert {n.status for n in final} == {SENT}
    assert [c.status for c in calls] == [200] * len(calls)
    _assert_each_sale_announced_once(calls, leads)
    assert len(calls) > 1
    for call in calls:
        text = call.body["text"]
        assert len(text.encode("utf-16-le")) // 2 <= MAX_MESSAGE_LEN
        assert len(_leads_in(call)) > 1
        _assert_digest_adds_up(call)
        # Every sale's lines are whole: each starts with its amount and ends with its UTM.
        assert text.count("• <b>") == text.count("  UTM: ") == len(_leads_in(call))
    # Full parts: the next sale would not have fitted.
    first = calls[0].body["text"]
    assert len(first.encode("utf-16-le")) // 2 > MAX_MESSAGE_LEN - 1200


@pytest.mark.skipif(
    backend() == "sqlite", reason="replicas share one PostgreSQL database; SQLite is one process"
)
def test_two_replicas_share_one_group_limit(database: str) -> None:
    leads = range(300, 360)
    # The stand-in allows one message per 0.5 s to the group; each replica alone
    # would keep to that, both together only if they share the chat's pace.
    strict = Limits(private_interval_s=0.2, group_messages=1, group_window_s=0.5, bot_per_s=30)
    with FakeTelegram(token=TOKEN, limits=strict) as telegram:
        with _notifiers(_settings(database, telegram), replicas=2) as stubs:
            for lead in leads:  # sales arrive at both replicas, over about 3 s
                stubs[lead % 2].Notify(_sale(lead, GROUP))
                time.sleep(0.05)
            final = _settled(stubs[0], leads)
        calls = _messages_to(telegram, GROUP)
    assert {n.status for n in final} == {SENT}
    assert [c.status for c in calls] == [200] * len(calls)  # no 429
    _assert_each_sale_announced_once(calls, leads)
    assert _most_in_any_window([c.at for c in calls], strict.group_window_s) == 1
    assert len(calls) >= 5  # both replicas had a chat to compete for, again and again


def test_a_429_holds_the_chat_for_retry_after_and_the_sale_is_sent_once(database: str) -> None:
    rate_limited = _metric("amoroute_telegram_rate_limited_total")
    with FakeTelegram(token=TOKEN) as telegram:
        telegram.reply_next(Reply.too_many_requests(retry_after=2))
        with _notifiers(_settings(database, telegram)) as [stub]:
            stub.Notify(_sale(401, GROUP))
            [final] = _settled(stub, range(401, 402))
        calls = _messages_to(telegram, GROUP)
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 2.0
    assert (final.status, final.attempts, final.error) == (SENT, 2, "")
    assert _metric("amoroute_telegram_rate_limited_total") == rate_limited + 1


def test_an_unreachable_chat_fails_its_sales_with_the_reason_and_others_are_delivered(
    database: str,
) -> None:
    unreachable = _metric("amoroute_notifications_total", status="failed", failure="chat_unreachable")
    kicked, missing, fine = range(500, 504), range(510, 514), range(520, 524)
    with FakeTelegram(token=TOKEN, limits=FAST) as telegram:
        telegram.make_unreachable(KICKED)
        telegram.make_unreachable(MISSING, Reply.bad_request("Bad Request: chat not found"))
        with _notifiers(_settings(database, telegram)) as [stub]:
            stub.BatchNotify(
                notifier_pb2.BatchNotifyRequest(
                    requests=[_sale(lead, KICKED) for lead in kicked]
                    + [_sale(lead, MISSING) for lead in missing]
                    + [_sale(lead, OTHER_GROUP) for lead in fine]
                )
            )
            final = {n.lead_id: n for leads in (kicked, missing, fine) for n in _settled(stub, leads)}
        tried = Counter(r.body["chat_id"] for r in telegram.requests)
        delivered = _messages_to(telegram, OTHER_GROUP)
    for lead in kicked:
        assert (final[lead].status, final[lead].failure) == (FAILED, CHAT_UNREACHABLE)
        assert "(403): Forbidden: bot was kicked from the group chat" in final[lead].error
        assert "add the bot to the chat" in final[lead].error
    for lead in missing:
        assert (final[lead].status, final[lead].failure) == (FAILED, CHAT_UNREACHABLE)
        assert "(400): Bad Request: chat not found" in final[lead].error
    assert {final[lead].status for lead in fine} == {SENT}
    _assert_each_sale_announced_once(delivered, fine)
    # One message told each chat's state; nothing of theirs was retried.
    assert (tried[KICKED], tried[MISSING]) == (1, 1)
    assert {final[lead].attempts for lead in [*kicked, *missing]} == {1}
    counted = _metric("amoroute_notifications_total", status="failed", failure="chat_unreachable")
    assert counted == unreachable + 8
    # The admin lists exactly these: the failure filter of ListNotifications.
    with _notifiers(_settings(database, telegram)) as [stub]:
        failed = stub.ListNotifications(
            notifier_pb2.ListNotificationsRequest(page_size=1000, failure=CHAT_UNREACHABLE)
        ).notifications
    assert sorted(n.lead_id for n in failed) == [*kicked, *missing]


def test_a_private_chat_gets_at_most_its_limit_a_second(database: str) -> None:
    leads = range(600, 620)
    with FakeTelegram(token=TOKEN, limits=FAST) as telegram:
        with _notifiers(_settings(database, telegram)) as [stub]:
            for lead in leads:
                stub.Notify(_sale(lead, PRIVATE))
                time.sleep(0.03)
            final = _settled(stub, leads)
        calls = _messages_to(telegram, PRIVATE)
    assert {n.status for n in final} == {SENT}
    assert [c.status for c in calls] == [200] * len(calls)
    _assert_each_sale_announced_once(calls, leads)
    gaps = [b.at - a.at for a, b in zip(calls, calls[1:], strict=False)]
    assert len(calls) > 1 and min(gaps) >= FAST.private_interval_s


def test_a_digest_telegram_refuses_is_resent_as_single_sales(database: str) -> None:
    leads = range(700, 704)
    with FakeTelegram(token=TOKEN) as telegram:
        telegram.reply_next(Reply.bad_request("Bad Request: can't parse entities"))
        with _notifiers(_settings(database, telegram)) as [stub]:
            stub.BatchNotify(
                notifier_pb2.BatchNotifyRequest(requests=[_sale(lead, GROUP) for lead in leads])
            )
            final = _settled(stub, leads)
        calls = _messages_to(telegram, GROUP)
    assert [(c.status, len(_leads_in(c))) for c in calls] == [(400, 4)] + [(200, 1)] * 4
    _assert_each_sale_announced_once([c for c in calls if c.status == 200], leads)
    assert [c.body["text"] for c in calls[1:]] == [n.text for n in final]
    assert {(n.status, n.attempts) for n in final} == {(SENT, 2)}
