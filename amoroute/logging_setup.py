"""One JSON log line per event, on stderr, for every process."""

import atexit
import json
import logging
import os
import queue
import re
import sys
import time
from collections.abc import Callable, Iterable
from logging.handlers import QueueHandler, QueueListener
from typing import Any, TextIO

import orjson

from amoroute import requestid

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}

# (trace id, span id) of the span the logging thread is in, or None; set by
# amoroute/tracing.py when the process traces, so lines cost nothing more otherwise.
_trace_fields: Callable[[], tuple[str, str] | None] | None = None


def set_trace_fields(fields: Callable[[], tuple[str, str] | None] | None) -> None:
    """Have every log line carry trace_id and span_id, from `fields`, inside a span."""
    global _trace_fields
    _trace_fields = fields


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
        if _trace_fields is not None and (ids := _trace_fields()):
            entry["trace_id"], entry["span_id"] = ids
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
            # PERF: orjson, as the edge writes a line per webhook; measured by python -m bench.ab
            return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # e.g. an int beyond 64 bits (orjson's error is a TypeError)
            return json.dumps(entry, ensure_ascii=False, default=str)


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


class _PreparedLine(logging.Formatter):
    """The line QueueHandler.prepare() made, as it stands (no stack appended again)."""

    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage()


class _OffThreadWriter:
    """The root logger's QueueHandler and the QueueListener that writes its lines.

    A logging thread only redacts and formats its line (in its own context, so the
    request id is right) and queues it; the listener's thread writes it to the
    stream, so no request thread waits on the stream's lock or its system call.
    stop() (at exit) writes every line still queued; a line logged after it is
    written at once. A forked child starts a listener of its own on a new queue:
    the lines its parent queued are the parent's to write."""

    def __init__(
        self, stream: TextIO, formatter: logging.Formatter, redact: logging.Filter
    ) -> None:
        self.lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self.handler = QueueHandler(self.lines)
        self.handler.setFormatter(formatter)
        self.handler.addFilter(redact)
        self.output = logging.StreamHandler(stream)
        self.output.setFormatter(_PreparedLine())
        # After stop(): the same lines, written by the thread that logs them.
        self.direct = logging.StreamHandler(stream)
        self.direct.setFormatter(formatter)
        self.direct.addFilter(redact)
        self.listener: QueueListener | None = None

    def start(self) -> None:
        self.lines = self.handler.queue = queue.SimpleQueue()
        self.listener = QueueListener(self.lines, self.output)
        self.listener.start()

    def stop(self) -> None:
        if self.listener is None:
            return
        root = logging.getLogger()
        if self.handler in root.handlers:
            root.handlers[root.handlers.index(self.handler)] = self.direct
        listener, self.listener = self.listener, None
        listener.stop()  # writes what is queued, then ends its thread
        # A line queued while the handlers were swapped.
        while True:
            try:
                self.output.handle(self.lines.get_nowait())
            except queue.Empty:
                return

    def start_in_child(self) -> None:
        if self.listener is not None:
            self.start()


_writer: _OffThreadWriter | None = None


def _stop_writer() -> None:
    if _writer is not None:
        _writer.stop()


def _start_writer_in_child() -> None:
    if _writer is not None:
        _writer.start_in_child()


# Registered after logging's own shutdown hook, so run before it.
atexit.register(_stop_writer)
os.register_at_fork(after_in_child=_start_writer_in_child)


def setup_logging(service: str, level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Route every logger of the process to one JSON line per record on stderr, with
    every value in `secrets` (CommonSettings.secret_values()) replaced by ***. The
    lines are written by a QueueListener's thread, every one of them by the time
    the process exits normally."""
    global _writer
    _stop_writer()
    writer = _OffThreadWriter(sys.stderr, JsonFormatter(service), RedactSecrets(secrets))
    root = logging.getLogger()
    for old in root.handlers:
        old.flush()
    root.handlers[:] = [writer.handler]
    writer.start()
    _writer = writer
    root.setLevel(level.upper())
    # Alembic announces each of its plugins at INFO whenever it is imported: noise.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
