"""Every environment variable referral_svc reads."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    referral_port: int = 50052
    referral_database_url: str = "sqlite:///var/referral.sqlite3"
    log_level: str = "INFO"
