"""The cyclic garbage collector, tuned for a process that serves many small calls.

Every request allocates a few hundred short-lived objects (headers, futures, frames, dicts),
nearly all freed at once by reference counting. With Python's default thresholds
(700, 10, 10) the collector still runs a young-generation pass every few requests, and now and
then a full pass over every object the process holds (modules, classes, caches: tens of
thousands). :func:`tune_for_serving` moves what start-up built out of the collector's sight
(:func:`gc.freeze`) and lets the young generation grow larger before a pass
(:func:`gc.set_threshold`), so passes are rarer; cycles are still collected.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_GENERATION_THRESHOLD", "tune_for_serving"]

#: allocations (net of deallocations) between two young-generation passes; Python's is 700
YOUNG_GENERATION_THRESHOLD = 7000


def tune_for_serving() -> None:
    """Freeze what start-up allocated and raise the young generation's threshold.

    Call once, when start-up is done and before serving. Objects created before the call are
    never examined by the collector again (they are not freed if they become cyclic garbage:
    start-up state lives as long as the process anyway). The older generations keep Python's
    thresholds.
    """
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, oldest)
