"""The JSON log lines every process writes, and the handler that writes them in batches."""

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from amoroute.logging_setup import BatchedStreamHandler, JsonFormatter
from tests.support.waiting import eventually


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger(f"test.logs.{os.getpid()}")
    log.propagate = False
    log.setLevel(logging.INFO)
    yield log
    for handler in log.handlers:
        handler.close()
    log.handlers.clear()


def _attach(log: logging.Logger, stream: io.TextIOBase, flush_s: float) -> BatchedStreamHandler:
    handler = BatchedStreamHandler(stream, flush_s=flush_s)  # type: ignore[arg-type]
    handler.setFormatter(JsonFormatter("test"))
    log.addHandler(handler)
    return handler


def _messages(text: str) -> list[str]:
    return [json.loads(line)["msg"] for line in text.splitlines()]


def test_info_lines_are_written_in_order_by_the_writer_thread(logger: logging.Logger) -> None:
    stream = io.StringIO()
    _attach(logger, stream, flush_s=0.05)
    for k in range(5):
        logger.info("line %d", k)
    assert eventually(lambda: len(_messages(stream.getvalue())) == 5)
    assert _messages(stream.getvalue()) == [f"line {k}" for k in range(5)]


def test_a_warning_is_written_at_once_with_every_line_before_it(logger: logging.Logger) -> None:
    stream = io.StringIO()
    _attach(logger, stream, flush_s=3600)  # the writer thread never gets to it
    logger.info("webhook answered")
    assert stream.getvalue() == ""
    logger.warning("routing queue full")
    assert _messages(stream.getvalue()) == ["webhook answered", "routing queue full"]


def test_closing_the_handler_writes_what_it_holds(logger: logging.Logger) -> None:
    stream = io.StringIO()
    handler = _attach(logger, stream, flush_s=3600)
    logger.info("last words")
    handler.close()
    assert _messages(stream.getvalue()) == ["last words"]


def test_a_process_that_exits_normally_leaves_no_line_behind(tmp_path: Path) -> None:
    script = (
        "import logging; from amoroute.logging_setup import setup_logging; setup_logging('svc'); "
        "[logging.getLogger('x').info('event %d', k) for k in range(3)]"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert _messages(done.stderr) == ["event 0", "event 1", "event 2"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_write_its_parents_lines(
    logger: logging.Logger, tmp_path: Path
) -> None:
    out = tmp_path / "log.jsonl"
    with open(out, "w") as stream:
        handler = _attach(logger, stream, flush_s=3600)
        logger.info("parent, before the fork")
        pid = os.fork()
        if pid == 0:  # the child: its own line, then out at once
            logger.warning("child")
            os._exit(0)
        os.waitpid(pid, 0)
        handler.close()
    assert sorted(_messages(out.read_text())) == ["child", "parent, before the fork"]
