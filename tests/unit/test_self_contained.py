"""The repository stands alone: nothing in it reads a folder beside the clone."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SKIP = {".git", ".venv", "var", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}


def _project_files() -> list[Path]:
    files = []
    for path in REPO.rglob("*"):
        if path.is_file() and not SKIP.intersection(path.relative_to(REPO).parts):
            files.append(path)
    return files


def test_no_file_points_outside_the_repository() -> None:
    outside = ("../shared", "parents[3]", "REPO.parent")
    offenders = []
    for path in _project_files():
        if path.suffix not in {".py", ".md", ".sh", ".yaml", ".yml", ".toml", ".cfg", ".ini", ""}:
            continue
        if path == Path(__file__).resolve():
            continue
        text = path.read_text(errors="replace")
        offenders += [f"{path.relative_to(REPO)}: {needle}" for needle in outside if needle in text]
    assert offenders == []


def test_the_amocrm_fixtures_live_in_the_repository() -> None:
    fixtures = REPO / "tests" / "fixtures" / "amocrm"
    assert (fixtures / "status_won_with_utm.form").is_file()
    assert (fixtures / "lead_v4.json").is_file()
