"""The daily summary's settings: a clear refusal at start for a bad time, zone or token."""

from datetime import time

import pytest
from pydantic import ValidationError

from notifier_svc import server
from notifier_svc.settings import Settings


@pytest.mark.parametrize("value", ["25:00", "9:00", "21:60", "21.00", "noon"])
def test_a_bad_summary_time_stops_the_start_naming_the_setting(value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(notifier_daily_summary_at=value)
    assert "notifier_daily_summary_at" in str(refused.value)
    assert "HH:MM" in str(refused.value)


def test_an_unknown_time_zone_stops_the_start_naming_the_setting() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(notifier_timezone="Asia/Nowhere")
    assert "notifier_timezone" in str(refused.value) and "Asia/Almaty" in str(refused.value)


def test_the_summary_is_off_unless_a_time_is_set() -> None:
    assert Settings().summary_time() is None
    on = Settings(notifier_daily_summary_at=" 09:05 ", notifier_timezone="Asia/Almaty")
    assert on.summary_time() == time(9, 5) and on.zone().key == "Asia/Almaty"


def test_the_summary_needs_the_notifier_token_when_tokens_are_set(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(
        notifier_database_url=f"sqlite:///{tmp_path / 'n.sqlite3'}",
        grpc_auth_tokens="router:router-token,edge:edge-token",
        notifier_daily_summary_at="21:00",
    )
    with pytest.raises(ValueError, match="no entry for 'notifier'"):
        server.build(settings, port=0)
