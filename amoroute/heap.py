"""Keeps the garbage collector's full passes short in long-running processes.

A full (oldest-generation) collection walks every tracked object, and holds the
GIL while it does. Each process starts with about 100,000 of them (modules,
protobuf descriptors, SQLAlchemy metadata, gRPC, the app) that live as long as
it does, so under load an edge worker stopped for 90-250 ms at each full pass
(6 in a quick `make bench`, timed with gc.callbacks) and every webhook in
flight waited: the 500/s phase's p99 is made of such waits. Frozen, those
objects are skipped: the same passes took 0.1-50 ms over 10,000 objects or
fewer.
"""

import gc


def freeze_startup_objects() -> None:
    """Collect the garbage of start-up, then exempt every object alive now from
    all later collections (gc.freeze). Call once, when the process is built and
    about to serve."""
    gc.collect()
    gc.freeze()
