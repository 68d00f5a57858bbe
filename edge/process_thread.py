"""The edge's background threads (the log writer, the routing queue): each
edge process starts its own, fed in batches from a queue.

gunicorn builds the app in each worker after fork (no preload), but a thread
must still be started lazily: by the first caller, in the process it serves."""

import os
import queue
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class ProcessThread:
    def __init__(self, name: str, target: Callable[[], None]) -> None:
        self.name = name
        self.target = target
        self.thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def start_once(self) -> None:
        """Start the thread unless this process has already started it."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self.thread = threading.Thread(target=self.target, name=self.name, daemon=True)
            self.thread.start()
            self._pid = os.getpid()

    def running_here(self) -> bool:
        """Started in this process (a forked child has none)."""
        return self.thread is not None and self._pid == os.getpid()


def take_batch(
    source: "queue.Queue[T] | queue.SimpleQueue[T]",
    limit: int,
    size: Callable[[T], int] = lambda item: 1,
    linger_s: float = 0.0,
) -> list[T]:
    """Wait for one item, then take whatever else is waiting or arrives within
    `linger_s`, up to `limit` in total `size`: the busier the producers, the
    bigger the batch."""
    batch = [source.get()]
    total = size(batch[0])
    deadline = time.monotonic() + linger_s
    while total < limit:
        try:
            wait = deadline - time.monotonic()
            batch.append(source.get(timeout=wait) if wait > 0 else source.get_nowait())
        except queue.Empty:
            break
        total += size(batch[-1])
    return batch
