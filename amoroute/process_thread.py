"""Background threads that each process starts for itself (the edge's log
writer and routing queue, fed in batches from a queue).

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


# How often a lingering batch looks whether enough has gathered.
POLL_S = 0.005


def take_batch(
    source: "queue.Queue[T] | queue.SimpleQueue[T]",
    limit: int,
    size: Callable[[T], int] = lambda item: 1,
    linger_s: float = 0.0,
    enough: int | None = None,
) -> list[T]:
    """Wait for one item; then, for up to `linger_s` or until `enough` items
    (not sizes; by default `limit`) wait, let others gather; then take whatever
    waits, up to `limit` in total `size`: the busier the producers, the bigger
    the batch.

    The linger sleeps rather than waiting on the queue, so producers putting
    items meanwhile do not wake this thread once per item."""
    batch = [source.get()]
    if linger_s > 0:
        deadline = time.monotonic() + linger_s
        while source.qsize() + 1 < (enough or limit):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, POLL_S))
    total = size(batch[0])
    while total < limit:
        try:
            batch.append(source.get_nowait())
        except queue.Empty:
            break
        total += size(batch[-1])
    return batch
