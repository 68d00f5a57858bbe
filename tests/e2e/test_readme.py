"""The README's commands work as printed: in a fresh copy of the repository with nothing
beside it, `make run`'s stack runs on its default ports inside a network namespace of its
own (so nothing else on the machine is in the way), and every shell block of the README
is run there as printed, from the repository's folder, with a bare PATH."""

import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Blocks that start the stack or the suite run elsewhere (this test, CI, test_make_run.py).
LONG_RUNNING = ("make run", "make test", "make bench")


def readme_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def runnable_blocks() -> list[str]:
    return [block for block in readme_blocks()
            if not any(line.lstrip().startswith(LONG_RUNNING) or " make run" in line
                       for line in block.splitlines())]


def _netns_available() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"amoroute-probe-{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True)
    if made.returncode != 0:
        return False
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return True


pytestmark = pytest.mark.skipif(
    not _netns_available(),
    reason="needs root and `ip netns` to run make run's stack on its default ports apart",
)


def fresh_copy(target: Path) -> Path:
    """The files git tracks or would track (as they are now), nothing else; the venv is
    shared, as `make run` would have made it."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to(REPO / ".venv")
    return target


@pytest.fixture(scope="module")
def namespace() -> Iterator[str]:
    name = f"amoroute-readme-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "delete", name], check=False)


@pytest.fixture(scope="module")
def made_run(namespace: str, tmp_path_factory) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """`make run`'s stack (amoroute.devrun, with the venv already made) in a fresh copy."""
    copy = fresh_copy(tmp_path_factory.mktemp("clone"))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(copy), "LANG": "C.UTF-8"}
    log = open(copy / "make-run.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        ["ip", "netns", "exec", namespace, str(REPO / ".venv/bin/python"), "-m",
         "amoroute.devrun"],
        cwd=copy, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while "amoroute is running" not in (copy / "make-run.log").read_text():
        assert proc.poll() is None, (copy / "make-run.log").read_text()[-3000:]
        assert time.monotonic() < deadline, (copy / "make-run.log").read_text()[-3000:]
        time.sleep(0.2)
    yield copy
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(60)
    log.close()


def test_the_readme_has_the_blocks_this_test_runs() -> None:
    blocks = runnable_blocks()
    assert any("curl" in block for block in blocks)
    assert any("grpcurl" in block for block in blocks)


@pytest.mark.parametrize("index", range(len(runnable_blocks())))
def test_each_readme_block_works_as_printed(made_run: Path, namespace: str, index: int) -> None:
    block = runnable_blocks()[index]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(made_run), "LANG": "C.UTF-8"}
    done = subprocess.run(
        ["ip", "netns", "exec", namespace, "bash", "-e", "-o", "pipefail", "-c", block],
        cwd=made_run, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, f"{block}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert "command not found" not in done.stderr


def test_the_webhook_of_the_readme_is_logged_and_routed(made_run: Path) -> None:
    # Runs after the blocks (pytest keeps the file's order): the curl block posted the
    # fixture to make run's edge, so its event is in the SQLite log, routed.
    import sqlalchemy as sa

    deadline = time.monotonic() + 30
    engine = sa.create_engine(f"sqlite:///{made_run / 'var' / 'edge.sqlite3'}")
    try:
        while True:
            with engine.connect() as conn:
                rows = conn.execute(sa.text(
                    "SELECT routing_decision, processing_status FROM webhook_logs "
                    "WHERE source = 'amocrm'")).all()
            if rows and all(status != "pending" for _, status in rows):
                break
            assert time.monotonic() < deadline, rows
            time.sleep(0.2)
    finally:
        engine.dispose()
    assert ("traffic", "success") in [tuple(r) for r in rows]
