"""How often the bot may post: Telegram's limits per kind of chat and per bot. Pure.

The Bot FAQ's figures: about one message a second to a private chat, 20 a minute
to a group or channel, about 30 a second over all chats. Every notifier replica
applies these intervals through the same rows of the notifier's database
(NotificationStore.claim_chat, reserve_bot_slot), so they hold for the bot as a whole.
"""

from dataclasses import dataclass

# Telegram's values: the defaults of NOTIFIER_PRIVATE_CHAT_PER_S,
# NOTIFIER_GROUP_CHAT_PER_MIN and NOTIFIER_BOT_PER_S.
PRIVATE_CHAT_PER_S = 1.0
GROUP_CHAT_PER_MIN = 20.0
BOT_PER_S = 30.0


def is_private_chat(chat_id: str) -> bool:
    """A user's chat has a positive id; groups and channels a negative one, or @username."""
    return chat_id.isdigit()


@dataclass(frozen=True)
class ChatLimits:
    """Messages the bot may send: per private chat a second, per group or channel a
    minute, and overall a second."""

    private_chat_per_s: float = PRIVATE_CHAT_PER_S
    group_chat_per_min: float = GROUP_CHAT_PER_MIN
    bot_per_s: float = BOT_PER_S

    def chat_interval_s(self, chat_id: str) -> float:
        """Seconds from Telegram's answer to one message until the next may leave for
        the same chat. Counted from the answer, so messages reach Telegram at least
        this far apart and never more than the limit fall in any window."""
        if is_private_chat(chat_id):
            return 1 / self.private_chat_per_s
        return 60 / self.group_chat_per_min

    @property
    def bot_interval_s(self) -> float:
        """Seconds between two messages of the bot, whatever their chats."""
        return 1 / self.bot_per_s
