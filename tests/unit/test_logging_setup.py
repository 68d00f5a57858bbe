"""The JSON log lines every process writes: formatted by the thread that logs, written
by a QueueListener's thread, none of them lost at exit or across a fork."""

import json
import subprocess
import sys
from typing import Any

import pytest


def _run(script: str) -> subprocess.CompletedProcess[str]:
    """`script` in a fresh interpreter, after `setup_logging` is imported."""
    return subprocess.run(
        [sys.executable, "-c",
         "import atexit, logging, os, sys, threading\n"
         "from amoroute import requestid\n"
         "from amoroute.logging_setup import setup_logging\n" + script],
        capture_output=True, text=True, timeout=60, check=True,
    )


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def _messages(text: str) -> list[str]:
    return [line["msg"] for line in _lines(text)]


def test_a_line_carries_the_request_id_of_its_thread_and_is_written_by_another() -> None:
    done = _run(
        "class Stream:  # says on stdout which thread writes each line\n"
        "    def write(self, text):\n"
        "        print(threading.current_thread().name, flush=True)\n"
        "        return sys.__stderr__.write(text)\n"
        "    def flush(self):\n"
        "        sys.__stderr__.flush()\n"
        "sys.stderr = Stream()\n"
        "setup_logging('svc')\n"
        "def request():\n"
        "    requestid.set_current('req-1')\n"
        "    logging.getLogger('edge').info('webhook answered', extra={'leads': 2})\n"
        "thread = threading.Thread(target=request, name='request-thread')\n"
        "thread.start(); thread.join()\n"
    )
    (line,) = _lines(done.stderr)
    assert line["msg"] == "webhook answered"
    assert (line["service"], line["request_id"], line["leads"]) == ("svc", "req-1", 2)
    writers = done.stdout.split()
    assert writers and "request-thread" not in writers and "MainThread" not in writers


def test_a_process_that_exits_normally_leaves_no_line_behind() -> None:
    done = _run(
        "setup_logging('svc')\n"
        "[logging.getLogger('x').info('event %d', k) for k in range(2000)]\n"
        "try:\n"
        "    1 / 0\n"
        "except ZeroDivisionError:\n"
        "    logging.getLogger('x').exception('last words')\n"
    )
    lines = _lines(done.stderr)
    assert [line["msg"] for line in lines] == [f"event {k}" for k in range(2000)] + ["last words"]
    assert "ZeroDivisionError" in lines[-1]["exc"]


def test_a_line_logged_after_the_listener_stopped_is_still_written() -> None:
    # Exit hooks run last registered first: this one runs after the listener stopped.
    done = subprocess.run(
        [sys.executable, "-c",
         "import atexit, logging\n"
         "atexit.register(lambda: logging.getLogger('x').warning('at exit'))\n"
         "from amoroute.logging_setup import setup_logging\n"
         "setup_logging('svc')\n"
         "logging.getLogger('x').info('before exit')\n"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert _messages(done.stderr) == ["before exit", "at exit"]


def test_secrets_are_redacted_before_a_line_is_queued() -> None:
    done = _run(
        "setup_logging('svc', secrets=['hook-s3cret'])\n"
        "log = logging.getLogger('edge')\n"
        "try:\n"
        "    raise ValueError('bad path /webhook/hook-s3cret')\n"
        "except ValueError:\n"
        "    log.exception('failed at %s', '/webhook/hook%2Ds3cret', extra={'path': 'hook-s3cret'})\n"
    )
    (line,) = _lines(done.stderr)
    assert line["msg"] == "failed at /webhook/***" and line["path"] == "***"
    assert "/webhook/***" in line["exc"]
    assert "s3cret" not in done.stderr


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_writes_its_own_lines_and_not_its_parents() -> None:
    done = _run(
        "setup_logging('svc')\n"
        "logging.getLogger('x').info('parent, before the fork')\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    logging.getLogger('x').info('child')\n"
        "    sys.exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "logging.getLogger('x').info('parent, after the fork')\n"
    )
    assert sorted(_messages(done.stderr)) == [
        "child", "parent, after the fork", "parent, before the fork"
    ]
