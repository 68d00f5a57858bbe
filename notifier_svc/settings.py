"""Every environment variable notifier_svc reads."""

import re
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator

from amoroute.settings import CommonSettings
from notifier_svc import pacing

# Telegram's chat_id: a numeric id (negative for groups and channels) or "@channelusername".
CHAT_ID = re.compile(r"-?\d{1,20}|@[A-Za-z0-9_]{4,32}")
_HH_MM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


class Settings(CommonSettings):
    notifier_port: int = 50054
    notifier_database_url: str = "sqlite:///var/notifier.sqlite3"
    # Empty: Telegram is off, notifications are stored as NOT_SENT.
    telegram_bot_token: SecretStr = SecretStr("")
    telegram_api_url: str = "https://api.telegram.org"
    # Chat for targetologists without their own telegram_chat_id.
    telegram_default_chat_id: str = ""
    # The other chats the bot may post to, comma-separated: every telegram_chat_id
    # of the routing rules. A Notify naming any other chat is refused, so a caller
    # cannot make the bot post wherever it likes. Checked while a bot token is set.
    telegram_allowed_chat_ids: str = ""
    # Bound of one send attempt (connecting plus waiting for Telegram's answer).
    telegram_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # Telegram's limits (Bot FAQ), shared by every replica on one database: messages
    # a second to one private chat, a minute to one group or channel, a second overall.
    notifier_private_chat_per_s: float = Field(default=pacing.PRIVATE_CHAT_PER_S, gt=0)
    notifier_group_chat_per_min: float = Field(default=pacing.GROUP_CHAT_PER_MIN, gt=0)
    notifier_bot_per_s: float = Field(default=pacing.BOT_PER_S, gt=0)
    # Currency of deal amounts: KZT is shown as ₸, any other code as itself.
    amocrm_currency: str = "KZT"
    # Subdomain for the link to a deal when the request does not carry one.
    amocrm_domain: str = ""
    # The daily summary: local time (HH:MM, 24-hour clock) at which every
    # targetologist's chat and the default chat get the last 24 hours' figures.
    # Empty: no summary.
    notifier_daily_summary_at: str = ""
    # The time zone of NOTIFIER_DAILY_SUMMARY_AT and of the summary's period (IANA).
    notifier_timezone: str = "UTC"
    # Where the summary's figures and chats come from (read-only calls, as the
    # `notifier` caller of GRPC_AUTH_TOKENS); used only with the summary on.
    router_addr: str = "localhost:50051"
    referral_addr: str = "localhost:50052"
    traffic_addr: str = "localhost:50053"

    @field_validator("notifier_daily_summary_at")
    @classmethod
    def _summary_at(cls, value: str) -> str:
        value = value.strip()
        if value and not _HH_MM.fullmatch(value):
            raise ValueError("must be a local time HH:MM (24-hour clock, e.g. 21:00), or empty")
        return value

    @field_validator("notifier_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        value = value.strip()
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                "must be an IANA time zone such as Asia/Almaty or UTC"
            ) from None
        return value

    def summary_time(self) -> time | None:
        """NOTIFIER_DAILY_SUMMARY_AT as a time, or None when the summary is off."""
        match = _HH_MM.fullmatch(self.notifier_daily_summary_at)
        return time(int(match.group(1)), int(match.group(2))) if match else None

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.notifier_timezone)

    @field_validator("telegram_default_chat_id")
    @classmethod
    def _chat_id(cls, value: str) -> str:
        value = value.strip()
        if value and not CHAT_ID.fullmatch(value):
            raise ValueError("must be a numeric Telegram chat id or @channelusername")
        return value

    @field_validator("telegram_allowed_chat_ids")
    @classmethod
    def _chat_ids(cls, value: str) -> str:
        for number, chat in enumerate(value.split(",") if value.strip() else [], start=1):
            if not CHAT_ID.fullmatch(chat.strip()):
                raise ValueError(
                    f"entry {number} ({chat.strip()!r}) must be a numeric Telegram chat id or "
                    "@channelusername; separate entries with commas"
                )
        return value

    def chat_limits(self) -> pacing.ChatLimits:
        return pacing.ChatLimits(
            private_chat_per_s=self.notifier_private_chat_per_s,
            group_chat_per_min=self.notifier_group_chat_per_min,
            bot_per_s=self.notifier_bot_per_s,
        )

    def allowed_chat_ids(self) -> frozenset[str]:
        """Every chat the bot may post to: the default chat and the allowed list."""
        chats = {c.strip() for c in self.telegram_allowed_chat_ids.split(",") if c.strip()}
        return frozenset(chats | ({self.telegram_default_chat_id} - {""}))

    @field_validator("telegram_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL, e.g. https://api.telegram.org")
        return value.rstrip("/")


def describe(settings: Settings) -> list[str]:
    """Start-up warnings: what this configuration leaves switched off."""
    if not settings.telegram_bot_token.get_secret_value():
        return [
            "TELEGRAM_BOT_TOKEN is not set: notifications are stored as NOT_SENT, "
            "nothing is sent to Telegram"
        ]
    lines = []
    if not settings.telegram_allowed_chat_ids:
        lines.append(
            "TELEGRAM_ALLOWED_CHAT_IDS is not set: a Notify naming a chat other than "
            "TELEGRAM_DEFAULT_CHAT_ID is refused; list every telegram_chat_id of the routing rules"
        )
    if not settings.telegram_default_chat_id:
        lines.append(
            "TELEGRAM_DEFAULT_CHAT_ID is not set: a sale whose targetologist has no "
            "telegram_chat_id is stored as FAILED, not sent"
        )
    if settings.summary_time() is not None and not settings.telegram_default_chat_id:
        lines.append(
            "TELEGRAM_DEFAULT_CHAT_ID is not set: the daily summary goes to the "
            "targetologists' chats only, no totals are sent"
        )
    if not settings.amocrm_domain:
        lines.append(
            "AMOCRM_DOMAIN is not set: messages link to the deal only when the caller "
            "sends account_subdomain"
        )
    return lines
