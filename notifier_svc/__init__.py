"""Notifier service: announces traffic sales in Telegram from its own outbox (notifications)."""
