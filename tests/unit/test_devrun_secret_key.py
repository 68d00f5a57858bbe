"""`make run` keeps one development AMOROUTE_SECRET_KEY per checkout, so the AmoCRM tokens it
stored stay readable at the next start; a key that is set wins."""

import stat
from pathlib import Path

from cryptography.fernet import Fernet

from amoroute.devrun import development_secret_key


def test_the_development_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    path = str(tmp_path / "amoroute-secret-key")
    first: dict[str, str] = {}
    development_secret_key(first, path)
    again: dict[str, str] = {}
    development_secret_key(again, path)

    assert first["AMOROUTE_SECRET_KEY"] == again["AMOROUTE_SECRET_KEY"]
    Fernet(first["AMOROUTE_SECRET_KEY"])  # a usable key
    assert stat.S_IMODE((tmp_path / "amoroute-secret-key").stat().st_mode) == 0o600


def test_a_key_that_is_set_wins_and_nothing_is_written(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    env = {"AMOROUTE_SECRET_KEY": key}
    development_secret_key(env, str(tmp_path / "amoroute-secret-key"))
    assert env["AMOROUTE_SECRET_KEY"] == key
    assert not (tmp_path / "amoroute-secret-key").exists()
