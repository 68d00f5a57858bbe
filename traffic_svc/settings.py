"""Every environment variable traffic_svc reads."""

from amoroute.settings import CommonSettings


class Settings(CommonSettings):
    traffic_port: int = 50053
    traffic_database_url: str = "sqlite:///var/traffic.sqlite3"
