"""A group upgraded to a supergroup: real notifier servers on ephemeral ports, a real
database, and the stand-in Telegram answering sends to the old id with 400 and
parameters.migrate_to_chat_id, as Telegram does."""

import logging
import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import grpc
import prometheus_client
import pytest

from amoroute.callers import EDGE, OPERATOR, ROUTER, CallerCredentials
from amoroute.channels import channel
from amoroute.v1 import deal_pb2, notifier_pb2, notifier_pb2_grpc
from notifier_svc import server
from notifier_svc.settings import Settings
from tests.support.databases import backend
from tests.support.fake_telegram import FakeTelegram, Limits, RecordedRequest
from tests.support.waiting import eventually

TOKEN = "123456789:AAH-moves-token"
# Groups as the routing rules name them; the supergroups Telegram moves them to are
# not in TELEGRAM_ALLOWED_CHAT_IDS.
OLD, OTHER_OLD, THIRD_OLD = "-4001000001", "-4001000002", "-4001000003"
NEW, MIDDLE, LAST = "-1004001000001", "-1004001000002", "-1004001000003"

# Short limits, in the stand-in and the notifier alike: 2 messages a second to a group.
FAST = Limits(private_interval_s=0.2, group_messages=2, group_window_s=1.0, bot_per_s=30)

PENDING = notifier_pb2.NOTIFICATION_STATUS_PENDING
SENT = notifier_pb2.NOTIFICATION_STATUS_SENT
FAILED = notifier_pb2.NOTIFICATION_STATUS_FAILED
NO_FAILURE = notifier_pb2.NOTIFICATION_FAILURE_UNSPECIFIED
REFUSED = notifier_pb2.NOTIFICATION_FAILURE_REFUSED

Stub = notifier_pb2_grpc.NotifierServiceStub
_DEAL_LINK = re.compile(r"/leads/detail/(\d+)\"")


def _settings(database: str, telegram: FakeTelegram) -> Settings:
    return Settings(
        notifier_database_url=database,
        telegram_bot_token=TOKEN,
        telegram_api_url=telegram.url,
        telegram_allowed_chat_ids=",".join((OLD, OTHER_OLD, THIRD_OLD)),
        telegram_timeout_s=2.0,
        amocrm_domain="onaiagencykz",
        notifier_private_chat_per_s=5,
        notifier_group_chat_per_min=120,
        notifier_bot_per_s=30,
    )


@contextmanager
def _notifiers(settings: Settings, replicas: int = 1) -> Iterator[list[Stub]]:
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
    url = make_database("notifier_moves")
    server.upgrade_database(Settings(notifier_database_url=url))
    return url


def _sale(lead_id: int, chat_id: str, **fields: Any) -> notifier_pb2.NotifyRequest:
    values: dict[str, Any] = {
        "lead_id": lead_id,
        "account_id": 32145678,
        "account_subdomain": "onaiagencykz",
        "deal_name": f"Курс #{lead_id}",
        "amount": 1000 + lead_id,
        "targetologist": "Kenesary",
        "utm": deal_pb2.UtmMarks(source="kenesary_fb", campaign="tp_june"),
        "chat_id": chat_id,
    }
    values.update(fields)
    return notifier_pb2.NotifyRequest(**values)


def _listed(stub: Stub, leads: range) -> list[notifier_pb2.Notification]:
    everything = stub.ListNotifications(notifier_pb2.ListNotificationsRequest(page_size=1000))
    return sorted((n for n in everything.notifications if n.lead_id in leads),
                  key=lambda n: n.lead_id)


def _settled(stub: Stub, leads: range, timeout: float = 30.0) -> list[notifier_pb2.Notification]:
    """The leads' notifications once none is pending any more."""
    final = eventually(
        lambda: (lambda ns: ns if len(ns) == len(leads) and PENDING not in {n.status for n in ns}
                 else None)(_listed(stub, leads)),
        timeout=timeout,
    )
    assert final, f"still pending: {[(n.lead_id, n.status) for n in _listed(stub, leads)]}"
    return list(final)


def _to(telegram: FakeTelegram, chat_id: str) -> list[RecordedRequest]:
    return [r for r in telegram.requests if r.body.get("chat_id") == chat_id]


def _leads_in(message: RecordedRequest) -> list[int]:
    return [int(lead) for lead in _DEAL_LINK.findall(message.body["text"])]


def _announced(messages: list[RecordedRequest]) -> Counter[int]:
    return Counter(lead for m in messages if m.status == 200 for lead in _leads_in(m))


def _moves(stub: Stub, **request: Any) -> notifier_pb2.ListChatMovesResponse:
    return stub.ListChatMoves(notifier_pb2.ListChatMovesRequest(**request))


def _moves_counted() -> float:
    return prometheus_client.REGISTRY.get_sample_value("amoroute_telegram_chat_moves_total") or 0.0


def test_a_sale_to_an_upgraded_group_arrives_in_the_supergroup_once_and_later_ones_go_straight_there(
    database: str, caplog: pytest.LogCaptureFixture
) -> None:
    counted = _moves_counted()
    caplog.set_level(logging.WARNING, logger="notifier_svc.outbox")
    with FakeTelegram(token=TOKEN, limits=FAST) as telegram:
        telegram.upgrade_to_supergroup(OLD, NEW)
        with _notifiers(_settings(database, telegram)) as [stub]:
            stub.Notify(_sale(1, OLD))
            [first] = _settled(stub, range(1, 2))
            moves = _moves(stub).chat_moves
            stub.Notify(_sale(2, OLD))  # the rules still name the old id
            [later] = _settled(stub, range(2, 3))
            # Rules already updated to the new id: the bot may post there, though
            # TELEGRAM_ALLOWED_CHAT_IDS names only the old one.
            stub.Notify(_sale(3, NEW))
            [updated] = _settled(stub, range(3, 4))
        to_old, to_new = _to(telegram, OLD), _to(telegram, NEW)
    [refused] = to_old  # one 400, for the first sale only
    assert (refused.status, _leads_in(refused)) == (400, [1])
    assert [(m.status, _leads_in(m)) for m in to_new] == [(200, [1]), (200, [2]), (200, [3])]
    assert (first.status, first.failure, first.error) == (SENT, NO_FAILURE, "")
    assert (first.chat_id, first.moved_from_chat_id, first.attempts) == (NEW, OLD, 2)
    assert first.telegram_message_id > 0
    assert (later.status, later.chat_id, later.moved_from_chat_id, later.attempts) == (
        SENT, NEW, OLD, 1)
    assert (updated.status, updated.chat_id, updated.moved_from_chat_id) == (SENT, NEW, "")
    [move] = moves
    assert (move.old_chat_id, move.new_chat_id, move.current_chat_id) == (OLD, NEW, NEW)
    assert abs(move.moved_at.seconds - time.time()) < 60
    assert _moves_counted() == counted + 1
    [warning] = [r for r in caplog.records if "moved chat" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert OLD in warning.getMessage() and NEW in warning.getMessage()
    assert "update the rules" in warning.getMessage()
    assert "telegram_chat_id" in warning.getMessage()


def test_waiting_sales_and_digests_move_with_the_chat_within_its_limits(database: str) -> None:
    leads = range(100, 124)
    # Long sales: one digest holds only some of them, the rest wait for the next slot.
    long_fields = {"targetologist": "К" * 200, "utm": deal_pb2.UtmMarks(source="s" * 300)}
    with FakeTelegram(token=TOKEN, limits=FAST) as telegram:
        telegram.upgrade_to_supergroup(OLD, NEW)
        with _notifiers(_settings(database, telegram)) as [stub]:
            stub.BatchNotify(notifier_pb2.BatchNotifyRequest(
                requests=[_sale(lead, OLD, **long_fields) for lead in leads]))
            final = _settled(stub, leads)
        to_old, to_new = _to(telegram, OLD), _to(telegram, NEW)
    [refused] = to_old
    assert refused.status == 400 and 1 < len(_leads_in(refused)) < len(leads)
    assert [m.status for m in to_new] == [200] * len(to_new)  # no 429 at the new chat
    assert len(to_new) > 1 and all(len(_leads_in(m)) > 1 for m in to_new)  # digests
    # The digest refused at the old id went out whole at the new one, at once.
    assert _leads_in(to_new[0]) == _leads_in(refused)
    assert to_new[0].at - refused.at < 1.0
    announced = _announced(to_new)
    assert sorted(announced) == list(leads) and set(announced.values()) == {1}
    assert {(n.status, n.chat_id, n.moved_from_chat_id) for n in final} == {(SENT, NEW, OLD)}


def test_a_chain_of_moves_is_followed_to_its_end_and_listed_page_by_page(database: str) -> None:
    counted = _moves_counted()
    with FakeTelegram(token=TOKEN, limits=FAST) as telegram:
        telegram.upgrade_to_supergroup(OTHER_OLD, MIDDLE)
        telegram.upgrade_to_supergroup(MIDDLE, LAST)
        with _notifiers(_settings(database, telegram)) as [stub]:
            stub.Notify(_sale(200, OTHER_OLD))
            [first] = _settled(stub, range(200, 201))
            stub.Notify(_sale(201, OTHER_OLD))
            [later] = _settled(stub, range(201, 202))
            listed = _moves(stub).chat_moves
            page_1 = _moves(stub, page_size=1)
            page_2 = _moves(stub, page_size=1, page_token=page_1.next_page_token)
            with pytest.raises(grpc.RpcError) as bad_token:
                _moves(stub, page_token="not-a-token")
        calls = [(r.body["chat_id"], r.status, _leads_in(r)) for r in telegram.requests]
    assert calls == [(OTHER_OLD, 400, [200]), (MIDDLE, 400, [200]), (LAST, 200, [200]),
                     (LAST, 200, [201])]
    assert (first.status, first.chat_id, first.moved_from_chat_id, first.attempts) == (
        SENT, LAST, OTHER_OLD, 3)
    assert (later.status, later.chat_id, later.moved_from_chat_id) == (SENT, LAST, OTHER_OLD)
    assert [(m.old_chat_id, m.new_chat_id, m.current_chat_id) for m in listed] == [
        (MIDDLE, LAST, LAST), (OTHER_OLD, MIDDLE, LAST)]
    assert list(page_1.chat_moves) + list(page_2.chat_moves) == list(listed)
    assert page_1.next_page_token and not page_2.next_page_token
    assert bad_token.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_token.value.details().startswith("page_token: ")
    assert _moves_counted() == counted + 2


def test_a_move_back_to_a_chat_already_moved_is_refused_not_followed(database: str) -> None:
    with FakeTelegram(token=TOKEN, limits=FAST) as telegram:
        telegram.upgrade_to_supergroup(THIRD_OLD, MIDDLE)
        telegram.upgrade_to_supergroup(MIDDLE, THIRD_OLD)
        with _notifiers(_settings(database, telegram)) as [stub]:
            stub.Notify(_sale(300, THIRD_OLD))
            [final] = _settled(stub, range(300, 301))
            moves = _moves(stub).chat_moves
            time.sleep(0.5)  # nothing more is tried
        calls = [(r.body["chat_id"], r.status) for r in telegram.requests]
    assert calls == [(THIRD_OLD, 400), (MIDDLE, 400)]
    assert (final.status, final.failure, final.chat_id) == (FAILED, REFUSED, MIDDLE)
    assert "back to itself" in final.error
    assert [(m.old_chat_id, m.new_chat_id) for m in moves] == [(THIRD_OLD, MIDDLE)]


@pytest.mark.skipif(
    backend() == "sqlite", reason="replicas share one PostgreSQL database; SQLite is one process"
)
def test_two_replicas_never_send_a_sale_twice_across_the_move(database: str) -> None:
    counted = _moves_counted()
    before, after = range(400, 430), range(430, 460)
    with FakeTelegram(token=TOKEN, limits=FAST) as telegram:
        with _notifiers(_settings(database, telegram), replicas=2) as stubs:
            for lead in before:  # the group as it was
                stubs[lead % 2].Notify(_sale(lead, OLD))
                time.sleep(0.03)
            # Upgraded while sales still wait for it and more arrive, at both replicas.
            telegram.upgrade_to_supergroup(OLD, NEW)
            for lead in after:
                stubs[lead % 2].Notify(_sale(lead, OLD))
                time.sleep(0.03)
            final = _settled(stubs[0], range(400, 460))
        to_old, to_new = _to(telegram, OLD), _to(telegram, NEW)
    announced = _announced(to_old + to_new)
    assert sorted(announced) == list(range(400, 460)) and set(announced.values()) == {1}
    assert {n.status for n in final} == {SENT}
    assert 429 not in {m.status for m in to_old + to_new}
    refused = [m for m in to_old if m.status == 400]
    assert refused  # the move was seen
    # Every sale the old id refused arrived in the new chat.
    assert {lead for m in refused for lead in _leads_in(m)} <= set(_announced(to_new))
    assert set(_announced(to_new)) >= set(after) - set(_announced(to_old))
    assert {n.chat_id for n in final if n.lead_id in after} == {NEW}
    assert _moves_counted() == counted + 1  # one move, however many replicas saw it


def test_chat_moves_are_listed_to_the_edge_and_the_operator_only(database: str) -> None:
    tokens = {ROUTER: "router-token-0123456789abcdef", EDGE: "edge-token-0123456789abcdef",
              OPERATOR: "operator-token-0123456789abcdef"}
    settings = Settings(
        notifier_database_url=database,
        grpc_auth_tokens=",".join(f"{caller}:{token}" for caller, token in tokens.items()),
    )
    running = server.build(settings, port=0)
    try:
        answers = {}
        for caller, token in tokens.items():
            with channel(f"localhost:{running.port}", CallerCredentials(token=token)) as ch:
                try:
                    listed = notifier_pb2_grpc.NotifierServiceStub(ch).ListChatMoves(
                        notifier_pb2.ListChatMovesRequest(), timeout=5)
                    answers[caller] = f"{len(listed.chat_moves)} moves"
                except grpc.RpcError as err:
                    answers[caller] = err.code().name
    finally:
        running.stop(0)
    assert answers == {ROUTER: "PERMISSION_DENIED", EDGE: "0 moves", OPERATOR: "0 moves"}
