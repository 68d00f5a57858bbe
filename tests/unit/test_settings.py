"""Settings come from the environment, or from files in AMOROUTE_SECRETS_DIR."""

import subprocess
import sys
from pathlib import Path


def read_setting(env: dict[str, str], expression: str) -> str:
    code = f"from edge.settings import Settings; print({expression})"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parents[2])
    return done.stdout.strip()


def test_a_secret_can_come_from_a_file_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / "admin_token").write_text("from-a-file-0123456789-0123456789")
    base = {"PATH": "/usr/bin:/bin", "AMOROUTE_SECRETS_DIR": str(tmp_path)}
    assert read_setting(base, "Settings().admin_token.get_secret_value()") == "from-a-file-0123456789-0123456789"
    with_env = {**base, "ADMIN_TOKEN": "from-the-environment-0123-0123456789"}
    assert read_setting(with_env, "Settings().admin_token.get_secret_value()") == "from-the-environment-0123-0123456789"


def test_without_a_secrets_dir_settings_come_from_the_environment_only() -> None:
    assert read_setting({"PATH": "/usr/bin:/bin"}, "repr(Settings().admin_token.get_secret_value())") == "''"
