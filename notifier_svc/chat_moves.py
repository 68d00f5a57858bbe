"""Where a chat Telegram moved lives now. Pure.

A group upgraded to a supergroup gets a new id: Telegram answers a send to the
old one with 400 and parameters.migrate_to_chat_id. The notifier records each
move (old -> new) and sends what is addressed to the old id to the end of the
chain of moves, while the routing rules still name the old id.
"""

from collections.abc import Mapping


def chain(moves: Mapping[str, str], chat_id: str) -> list[str]:
    """`chat_id`, then each chat it was moved to in turn (a -> b -> c). A cycle,
    which Telegram never makes and NotificationStore.move_chat refuses to record,
    ends the chain before its first repeated chat, so a lookup always ends."""
    seen = [chat_id]
    while (moved_to := moves.get(seen[-1])) is not None and moved_to not in seen:
        seen.append(moved_to)
    return seen


def current_chat(moves: Mapping[str, str], chat_id: str) -> str:
    """The chat that sales addressed to `chat_id` go to now."""
    return chain(moves, chat_id)[-1]


def closes_a_cycle(moves: Mapping[str, str], old_chat_id: str, new_chat_id: str) -> bool:
    """Whether recording old -> new would lead `old_chat_id`'s sales back to itself."""
    return old_chat_id in chain(moves, new_chat_id)


def rules_action(old_chat_id: str, current_chat_id: str) -> str:
    """What an operator must change after a move, for the log and the admin."""
    return (
        f"chat moved: update the rules: the targetologist whose telegram_chat_id is "
        f"{old_chat_id} gets {current_chat_id} (and TELEGRAM_ALLOWED_CHAT_IDS of notifier_svc)"
    )
