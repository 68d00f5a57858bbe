"""Fixtures shared by every test layer."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.databases import create_database, drop_database

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "amocrm"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="module")
def make_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], str]]:
    """Factory of fresh databases, dropped when the module's tests are done."""
    created: list[str] = []
    folder = tmp_path_factory.mktemp("db")

    def make(name: str) -> str:
        url = create_database(name, folder)
        created.append(url)
        return url

    yield make
    for url in created:
        drop_database(url)
