"""The hashed lock files agree with the pins in pyproject.toml (run `make lock` after a change)."""

import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _locked(name: str) -> dict[str, str]:
    text = (REPO / "requirements" / name).read_text()
    return {
        m[1].lower().replace("_", "-"): m[2]
        for m in re.finditer(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^ \\;]+)", text, re.M)
    }


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(.+)", requirement)
        assert match, f"pyproject.toml: {requirement!r} is not pinned with =="
        pins[match[1].lower().replace("_", "-")] = match[2]
    return pins


@pytest.mark.parametrize(
    ("lock", "groups"), [("runtime.lock", ["runtime"]), ("test.lock", ["runtime", "test"])]
)
def test_every_pin_is_in_the_lock_at_the_same_version(lock: str, groups: list[str]) -> None:
    project = PYPROJECT["project"]
    wanted = {}
    for group in groups:
        wanted.update(_pins(project["dependencies"] if group == "runtime"
                            else project["optional-dependencies"][group]))
    locked = _locked(lock)
    assert {name: locked.get(name) for name in wanted} == wanted


def test_every_locked_package_has_a_hash() -> None:
    for lock in ("runtime.lock", "test.lock"):
        entries = re.split(r"\n(?=[A-Za-z0-9])", (REPO / "requirements" / lock).read_text())
        for entry in entries:
            if "==" in entry.split("\n")[0]:
                assert "--hash=sha256:" in entry, f"{lock}: {entry.splitlines()[0]}"


def test_test_tools_stay_out_of_the_image() -> None:
    runtime = _locked("runtime.lock")
    for tool in ("grpcio-tools", "grpcio-testing", "pytest", "schemathesis", "uv"):
        assert tool not in runtime


def test_grpc_packages_share_one_version() -> None:
    locked = _locked("test.lock")
    grpc = {name: version for name, version in locked.items() if name.startswith("grpcio")}
    assert len(set(grpc.values())) == 1, grpc
