"""One JSON log line per event, on stderr, for every process."""

import json
import logging
import os
import re
import sys
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any, TextIO

import orjson

from amoroute import requestid
from amoroute.process_thread import ProcessThread

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if request_id := requestid.current():
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:  # as RedactSecrets leaves it
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        try:
            # orjson: ~0.3 us a line against json's ~4 (the edge writes one per webhook).
            return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # e.g. an int beyond 64 bits (orjson's error is a TypeError)
            return json.dumps(entry, ensure_ascii=False, default=str)


# How long an INFO line may wait in memory before it is written.
FLUSH_S = 0.2
# Lines held at most before the writer is woken early.
MAX_LINES = 1000


class BatchedStreamHandler(logging.Handler):
    """Writes records to a stream a batch at a time, from a background thread.

    A StreamHandler writes and flushes each record in the thread that logs it,
    holding the handler's lock across the system call, while the GIL changes
    hands around it. With a line per webhook and 16 request threads per edge
    process, that cost about 35 us of edge CPU per webhook beyond the line
    itself (441 against 407 us, medians of 4 rounds in turns, --leads 1).
    Here a request thread only formats its line (in its own context, so the
    request id is right) and appends it to a list; a writer thread writes what
    has gathered every FLUSH_S. A WARNING or worse is written at once, with
    every line before it, by the thread that logs it; logging.shutdown(), run
    at exit, writes what is left."""

    def __init__(self, stream: TextIO, flush_s: float = FLUSH_S) -> None:
        super().__init__()
        self.stream = stream
        self.flush_s = flush_s
        self._lines: list[str] = []
        self._lines_lock = threading.Lock()  # held for an append or a swap only
        self._write_lock = threading.Lock()  # batches reach the stream in order
        self._wake = threading.Event()
        self._closed = False
        self._writer = ProcessThread("log-lines", self._write_every_interval)
        # A forked child (a gunicorn worker) does not write its parent's lines.
        this = weakref.ref(self)

        def forget_in_child() -> None:
            handler = this()
            if handler is not None:
                handler._forget_parent()

        os.register_at_fork(after_in_child=forget_in_child)

    def handle(self, record: logging.LogRecord) -> bool:
        # Not under the handler's lock, as Handler.handle would: emit does no I/O
        # but for a WARNING, which must not wait behind another thread's write.
        passed = self.filter(record)
        if not passed:
            return False
        # Since Python 3.12 a filter may hand back a record to log instead.
        self.emit(passed if isinstance(passed, logging.LogRecord) else record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        with self._lines_lock:
            self._lines.append(line)
            held = len(self._lines)
        if record.levelno >= logging.WARNING or self._closed:
            self.flush()
            return
        self._writer.start_once()
        if held >= MAX_LINES:
            self._wake.set()

    def flush(self) -> None:
        """Write every line held so far."""
        with self._write_lock:
            with self._lines_lock:
                lines, self._lines = self._lines, []
            if not lines:
                return
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except Exception:  # as StreamHandler: a broken stream must not break the caller
                self.handleError(logging.makeLogRecord({"msg": lines[0]}))

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self.flush()
        super().close()

    def _write_every_interval(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_s)
            self._wake.clear()
            self.flush()

    def _forget_parent(self) -> None:
        self._lines = []
        self._lines_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()


REDACTED = "***"


def _any_spelling(secret: str) -> str:
    """A pattern for `secret` with any of its characters possibly percent-encoded, as
    it may read in a URL (a path or a query string)."""
    parts = []
    for char in secret:
        encoded = "".join(
            "%" + "".join(f"[{h.upper()}{h.lower()}]" if h.isalpha() else h for h in f"{b:02X}")
            for b in char.encode()
        )
        parts.append(f"(?:{re.escape(char)}|{encoded})")
    return "".join(parts)


class RedactSecrets(logging.Filter):
    """A handler filter that replaces every secret value (as given, or percent-encoded
    in part or whole, as it may read in a URL) with *** in a record's message,
    arguments, extra fields, exception and stack text, whichever logger wrote it: a
    failed request's line may carry the webhook secret in its path, an error the token
    it was sent with. Set on a handler, not a logger, so records that propagate are
    caught."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first: a secret that contains another is replaced whole.
        ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(_any_spelling, ordered))) if ordered else None

    def redact(self, text: str) -> str:
        return text if self.pattern is None else self.pattern.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.pattern is None:
            return True
        try:
            self._redact_record(record)
        except Exception:  # a log call never fails its caller, nor writes a secret
            record.msg, record.args = "log line withheld: it could not be redacted", None
            record.exc_info = record.exc_text = record.stack_info = None
            for key in [k for k in record.__dict__ if k not in _RESERVED]:
                del record.__dict__[key]
        return True

    def _redact_record(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the format: keep what is there
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info:
            # Rendered once here, redacted, and the live exception dropped so that
            # no formatter renders it again unredacted.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _RESERVED:
                record.__dict__[key] = self._redact_value(value)

    def _redact_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if type(value) is dict:
            return {k: self._redact_value(v) for k, v in value.items()}
        if type(value) in (list, tuple):
            return type(value)(self._redact_value(v) for v in value)
        return value


def redact_handlers(logger: logging.Logger, secrets: Iterable[str]) -> None:
    """Add a RedactSecrets filter to each of `logger`'s own handlers (for loggers
    that do not propagate to the root, such as gunicorn's)."""
    secrets = list(secrets)
    for handler in logger.handlers:
        handler.addFilter(RedactSecrets(secrets))


def setup_logging(service: str, level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Route every logger of the process to one JSON line per record on stderr, with
    every value in `secrets` (CommonSettings.secret_values()) replaced by ***."""
    handler = BatchedStreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    for old in root.handlers:
        old.flush()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Alembic announces each of its plugins at INFO whenever it is imported: noise.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
