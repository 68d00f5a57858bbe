"""Start-up objects are frozen out of the garbage collector; start-up garbage is not."""

import gc
import weakref

from amoroute.heap import freeze_startup_objects


class _Node:
    def __init__(self) -> None:
        self.other: object = None


def test_start_up_objects_leave_the_collector_and_garbage_is_freed_first() -> None:
    kept = _Node()
    garbage_a, garbage_b = _Node(), _Node()
    garbage_a.other, garbage_b.other = garbage_b, garbage_a  # a cycle only a collection frees
    freed = weakref.ref(garbage_a)
    del garbage_a, garbage_b
    try:
        freeze_startup_objects()
        assert freed() is None
        assert gc.get_freeze_count() > 0
        # Frozen objects are outside every generation a collection walks.
        assert not any(obj is kept for obj in gc.get_objects())
    finally:
        gc.unfreeze()
    assert any(obj is kept for obj in gc.get_objects())
