"""`python -m edge migrate`: upgrade the edge database (gunicorn serves the app)."""

import argparse
import logging
from pathlib import Path

from amoroute.db import migrate
from amoroute.logging_setup import setup_logging
from edge.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_edge"


def upgrade_database(settings: Settings) -> None:
    migrate(settings.edge_database_url, MIGRATIONS, VERSION_TABLE)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m edge")
    parser.add_argument("command", choices=["migrate"])
    parser.parse_args()
    settings = Settings()
    setup_logging("edge", settings.log_level, settings.secret_values())
    upgrade_database(settings)
    logging.getLogger("edge").info("database upgraded")
