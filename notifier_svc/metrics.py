"""The notifier's Prometheus metrics."""

import prometheus_client

from notifier_svc.store import Failure, Status

NOTIFICATIONS = prometheus_client.Counter(
    "amoroute_notifications_total",
    "Notifications by final status (sent, not_sent, failed) and, for failed ones, why "
    "(chat_unreachable, refused, gave_up, no_chat).",
    ["status", "failure"],
)
RATE_LIMITED = prometheus_client.Counter(
    "amoroute_telegram_rate_limited_total",
    "Telegram's 429 answers (Too Many Requests): each holds its chat for retry_after.",
)


def count_finished(finished: dict[tuple[Status, Failure], int]) -> None:
    """Count notifications that reached a final status."""
    for (status, failure), count in finished.items():
        if count:
            NOTIFICATIONS.labels(status.value, failure.value).inc(count)
CHAT_MOVES = prometheus_client.Counter(
    "amoroute_telegram_chat_moves_total",
    "Chats Telegram moved to a new id (a group upgraded to a supergroup): each is a "
    "routing rule whose telegram_chat_id should be updated (ListChatMoves).",
)
