"""executor.collector: the garbage collector's tuning for serving."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from executor.collector import YOUNG_GENERATION_THRESHOLD, tune_for_serving


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_tuning_freezes_start_up_and_raises_only_the_young_threshold(
    restored_collector: None,
) -> None:
    _, middle, oldest = gc.get_threshold()
    tune_for_serving()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, middle, oldest)


def test_cycles_made_after_tuning_are_still_collected(restored_collector: None) -> None:
    tune_for_serving()

    class Node:
        partner: object = None

    first, second = Node(), Node()
    first.partner, second.partner = second, first
    count = sum(isinstance(o, Node) for o in gc.get_objects())
    del first, second
    gc.collect()
    assert count == 2
    assert not any(isinstance(o, Node) for o in gc.get_objects())
