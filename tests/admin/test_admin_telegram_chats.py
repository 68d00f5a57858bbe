"""GET /api/admin/telegram/chats and POST /api/admin/telegram/chat-moves/update-rules on the
real app, with real notifier and router servers behind it and the stand-in Telegram moving
one group and refusing another chat; and the YAML rewrite they rely on (pure)."""

from collections.abc import Iterator
from pathlib import Path

import falcon.testing
import pytest

from amoroute.channels import channel
from amoroute.v1 import deal_pb2, notifier_pb2, notifier_pb2_grpc
from edge.admin_telegram import replace_chat, rules_targetologists
from tests.admin.helpers import AUTH, admin_client, migrated_edge_database
from tests.support.fake_telegram import FakeTelegram
from tests.support.services import Services, start_services
from tests.support.waiting import eventually

OLD, NEW, GONE, OTHER = "-4006000001", "-1004006000001", "-4006000002", "-4006000003"
RULES = f"""# Who is credited; the chats ({OLD} is Kenesary's group).
pipelines: [10418746]
won_status_ids: [142]
referral:
  prefix: "ref_"
  fields: [utm_source]
traffic:
  fields: [utm_source]
  targetologists:
    - name: Kenesary
      patterns: ["kenesary_*"]
      telegram_chat_id: "{OLD}"
    - {{name: Dana, patterns: ["dana_*"], telegram_chat_id: '{OLD}'}}
    - name: Aidana
      patterns: ["aidana_*"]
      telegram_chat_id: "{GONE}"
    - name: Bolat
      patterns: ["bolat_*"]
      telegram_chat_id: "{OTHER}"
"""


@pytest.fixture(scope="module")
def services(make_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    with FakeTelegram() as telegram:
        telegram.upgrade_to_supergroup(OLD, NEW)
        telegram.make_unreachable(GONE)
        started = start_services(
            make_database,
            telegram_bot_token="123456:admin-chats-token",
            telegram_api_url=telegram.url,
            telegram_allowed_chat_ids=f"{OLD},{GONE},{OTHER}",
        )
        folder = Path(tmp_path_factory.mktemp("rules"))
        (folder / "rules.yaml").write_text(RULES)
        started.start_router(routing_rules=str(folder / "rules.yaml"))
        started.start_router(
            "router-file", routing_rules=str(folder / "rules.yaml"), routing_rules_source="file"
        )
        with channel(started.addr("notifier")) as ch:
            stub = notifier_pb2_grpc.NotifierServiceStub(ch)
            for lead_id, chat in [(1, OLD), (2, GONE), (3, GONE)]:
                stub.Notify(notifier_pb2.NotifyRequest(
                    lead_id=lead_id, account_id=1, amount=1000, targetologist="Kenesary",
                    utm=deal_pb2.UtmMarks(source="kenesary_fb"), chat_id=chat,
                ))
            listed = notifier_pb2.ListNotificationsRequest(page_size=10)
            assert eventually(lambda: all(
                n.status != notifier_pb2.NOTIFICATION_STATUS_PENDING
                for n in stub.ListNotifications(listed).notifications
            ), timeout=20)
        yield started
        started.stop()


@pytest.fixture(scope="module")
def client(services: Services, make_database) -> falcon.testing.TestClient:  # type: ignore[no-untyped-def]
    return admin_client(migrated_edge_database(make_database),
                        router_addr=services.addr("router"),
                        notifier_addr=services.addr("notifier"))


def _update(client: falcon.testing.TestClient, body: object) -> falcon.testing.Result:
    return client.simulate_post("/api/admin/telegram/chat-moves/update-rules", json=body,
                                headers=AUTH)


def test_the_page_lists_unreachable_chats_and_moves_then_updates_the_rules(
    client: falcon.testing.TestClient,
) -> None:
    chats = client.simulate_get("/api/admin/telegram/chats", headers=AUTH).json
    [unreachable] = chats["unreachable"]
    assert (unreachable["chat_id"], unreachable["count"]) == (GONE, 2)
    assert "Forbidden: bot was kicked" in unreachable["reason"] and unreachable["last_seen"]
    [move] = chats["moves"]
    assert (move["old_chat_id"], move["current_chat_id"]) == (OLD, NEW)
    assert move["targetologists"] == ["Kenesary", "Dana"]
    assert chats["rules_editable"] is True

    reply = _update(client, {"old_chat_id": OLD})
    assert reply.status_code == 200, reply.text
    assert reply.json["changed"] == 2 and reply.json["version"] == chats["rules_version"] + 1
    rules = client.simulate_get("/api/admin/rules", headers=AUTH).json
    assert rules["author"] == "admin" and OLD in rules["comment"]
    assert f'telegram_chat_id: "{NEW}"' in rules["yaml"] and f'{OLD} is Kenesary' in rules["yaml"]
    assert f'telegram_chat_id: "{OTHER}"' in rules["yaml"]
    after = client.simulate_get("/api/admin/telegram/chats", headers=AUTH).json
    assert after["moves"][0]["targetologists"] == []
    again = _update(client, {"old_chat_id": OLD})
    assert again.status_code == 409, again.text


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ([], "body"),
        ({"old_chat_id": OLD, "new_chat_id": NEW}, "new_chat_id"),
        ({}, "old_chat_id"),
        ({"old_chat_id": 4006000001}, "old_chat_id"),
        ({"old_chat_id": "-40060000x1"}, "old_chat_id"),
        ({"old_chat_id": OTHER}, "old_chat_id"),  # a chat that never moved
    ],
)
def test_a_bad_update_is_400_naming_the_field(
    client: falcon.testing.TestClient, body: object, name: str
) -> None:
    reply = _update(client, body)
    assert reply.status_code == 400, reply.text
    assert reply.json["description"].startswith(f"{name}: "), reply.json


def test_rules_kept_in_a_file_are_not_updated(
    services: Services, make_database  # type: ignore[no-untyped-def]
) -> None:
    client = admin_client(migrated_edge_database(make_database),
                          router_addr=services.addr("router-file"),
                          notifier_addr=services.addr("notifier"))
    chats = client.simulate_get("/api/admin/telegram/chats", headers=AUTH).json
    assert chats["rules_editable"] is False and "ROUTING_RULES_SOURCE=file" in (
        chats["rules_read_only_reason"])
    assert chats["moves"][0]["targetologists"] == ["Kenesary", "Dana"]
    assert _update(client, {"old_chat_id": OLD}).status_code == 403


def test_replace_chat_changes_only_that_chat_and_keeps_the_rest_as_written() -> None:
    yaml, changed = replace_chat(RULES, OLD, NEW)
    assert changed == 2
    assert yaml.count(f'"{NEW}"') == 2 and f"telegram_chat_id: {OLD}" not in yaml
    assert yaml.startswith(f"# Who is credited; the chats ({OLD} is Kenesary's group).")
    # A longer id that starts with the old one is another chat.
    assert replace_chat('telegram_chat_id: "-40060000011"', OLD, NEW) == (
        'telegram_chat_id: "-40060000011"', 0)
    assert replace_chat(f"telegram_chat_id: {OLD}\n", OLD, NEW) == (
        f'telegram_chat_id: "{NEW}"\n', 1)
    assert rules_targetologists('{"traffic": {"targetologists": [{"name": "A"}]}}', OLD) == []
