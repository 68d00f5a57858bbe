"""take_batch: how the edge's background threads gather their batches."""

import queue
import threading
import time

from amoroute.process_thread import take_batch


def filled(*items: int) -> "queue.SimpleQueue[int]":
    source: queue.SimpleQueue[int] = queue.SimpleQueue()
    for item in items:
        source.put(item)
    return source


def test_takes_what_waits_up_to_the_limit_in_order() -> None:
    source = filled(1, 2, 3, 4, 5)
    assert take_batch(source, 3) == [1, 2, 3]
    assert take_batch(source, 3) == [4, 5]


def test_limit_counts_each_item_by_its_size() -> None:
    source = filled(2, 2, 2, 2)
    assert take_batch(source, 5, size=lambda rows: rows) == [2, 2, 2]


def test_waits_for_the_first_item() -> None:
    source: queue.SimpleQueue[int] = queue.SimpleQueue()
    threading.Timer(0.05, source.put, (7,)).start()
    assert take_batch(source, 10) == [7]


def test_without_linger_does_not_wait_for_more() -> None:
    source = filled(1)
    threading.Timer(0.2, source.put, (2,)).start()
    assert take_batch(source, 10) == [1]


def test_linger_takes_what_arrives_meanwhile() -> None:
    source = filled(1)
    threading.Timer(0.02, source.put, (2,)).start()
    assert take_batch(source, 10, linger_s=0.5, enough=2) == [1, 2]


def test_linger_ends_once_enough_waits() -> None:
    source = filled(1, 2, 3)
    started = time.monotonic()
    assert take_batch(source, 10, linger_s=5.0, enough=3) == [1, 2, 3]
    assert time.monotonic() - started < 1.0


def test_linger_ends_after_linger_s_with_what_there_is() -> None:
    source = filled(1)
    started = time.monotonic()
    assert take_batch(source, 10, linger_s=0.05, enough=5) == [1]
    assert time.monotonic() - started >= 0.05
