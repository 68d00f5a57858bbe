"""Following recorded chat moves (pure): chains end, cycles are caught."""

import pytest

from notifier_svc.chat_moves import chain, closes_a_cycle, current_chat, rules_action


@pytest.mark.parametrize(
    ("moves", "chat", "expected"),
    [
        ({}, "-1", ["-1"]),
        ({"-1": "-1001"}, "-1", ["-1", "-1001"]),
        ({"-1": "-1001", "-1001": "-1002"}, "-1", ["-1", "-1001", "-1002"]),
        ({"-1": "-1001", "-1001": "-1002"}, "-1001", ["-1001", "-1002"]),
        ({"-5": "-1001"}, "-1", ["-1"]),
        # A cycle ends before its first repeated chat.
        ({"-1": "-2", "-2": "-1"}, "-1", ["-1", "-2"]),
        ({"-1": "-2", "-2": "-3", "-3": "-2"}, "-1", ["-1", "-2", "-3"]),
        ({"-1": "-1"}, "-1", ["-1"]),
    ],
)
def test_a_chain_follows_each_move_and_ends(
    moves: dict[str, str], chat: str, expected: list[str]
) -> None:
    assert chain(moves, chat) == expected
    assert current_chat(moves, chat) == expected[-1]


def test_a_move_back_into_its_own_chain_closes_a_cycle() -> None:
    moves = {"-1": "-2", "-2": "-3"}
    assert closes_a_cycle(moves, "-3", "-1")
    assert closes_a_cycle(moves, "-2", "-2")
    assert closes_a_cycle({}, "-7", "-7")
    assert not closes_a_cycle(moves, "-3", "-4")
    assert not closes_a_cycle(moves, "-9", "-1")


def test_the_action_names_both_chats_and_the_rule_to_change() -> None:
    action = rules_action("-4001", "-1004001")
    assert "-4001" in action and "-1004001" in action and "telegram_chat_id" in action
