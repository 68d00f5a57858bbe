"""Every environment variable referral_svc reads."""

from amoroute.settings import CommonSettings


class Settings(CommonSettings):
    referral_port: int = 50052
    referral_database_url: str = "sqlite:///var/referral.sqlite3"
