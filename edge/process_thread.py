"""A background thread that each edge process starts for itself.

gunicorn builds the app in each worker after fork (no preload), but a thread
must still be started lazily: by the first caller, in the process it serves."""

import os
import threading
from collections.abc import Callable


class ProcessThread:
    def __init__(self, name: str, target: Callable[[], None], count: int = 1) -> None:
        """`count` threads run `target`."""
        self.name = name
        self.target = target
        self.count = count
        self.threads: list[threading.Thread] = []
        self._pid = 0
        self._lock = threading.Lock()

    def start_once(self) -> None:
        """Start the threads unless this process has already started them."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self.threads = [
                threading.Thread(target=self.target, name=f"{self.name}-{n}", daemon=True)
                for n in range(self.count)
            ]
            for thread in self.threads:
                thread.start()
            self._pid = os.getpid()

    def running_here(self) -> bool:
        """Started in this process (a forked child has none)."""
        return bool(self.threads) and self._pid == os.getpid()
