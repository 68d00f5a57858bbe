"""Settings every process reads, besides its own."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    log_level: str = "INFO"
    # Port of the Prometheus /metrics endpoint of a gRPC service; 0 turns it off.
    metrics_port: int = 9090
