"""Plumbing shared by every amoroute process: settings helpers, logging, the gRPC
server bootstrap, gRPC channels, the database engine and migrations. No domain logic."""

from importlib.metadata import version as _installed_version
from pathlib import Path as _Path

# The release version has one source, the repository's VERSION file (pyproject reads it too). A
# checkout (make run, an editable install) reads the file itself, so a bump shows without
# reinstalling; an installed wheel (the image) has no such file and answers from its metadata.
_VERSION_FILE = _Path(__file__).resolve().parents[1] / "VERSION"
__version__ = (
    _VERSION_FILE.read_text().strip() if _VERSION_FILE.is_file() else _installed_version("amoroute")
)
