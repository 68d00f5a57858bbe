"""Every environment variable traffic_svc reads."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    traffic_port: int = 50053
    traffic_database_url: str = "sqlite:///var/traffic.sqlite3"
    log_level: str = "INFO"
