"""The pool's queue and caller deadlines, without worker processes: a pool that was never
started keeps every call it accepts waiting, which is what these tests look at."""

from __future__ import annotations

import json
import time
from pathlib import Path

from executor.pool import Call, Pool

Answers = list[tuple[str, bool, dict[str, object]]]


def idle_pool() -> Pool:
    """A pool with no workers: submitted calls wait in its queue."""
    return Pool(Path("methods"), processes=1, max_tasks_per_child=0, queue_maxsize=10)


def call(method: str, answers: Answers, deadline_ms: float | None) -> Call:
    def on_done(ok: bool, payload: bytes) -> None:
        answers.append((method, ok, json.loads(payload)))

    return Call(method, [], on_done, 30.0, None, deadline_ms)


def test_withdrawn_waiting_calls_leave_the_queue_unanswered() -> None:
    pool = idle_pool()
    answers: Answers = []
    calls = [call("first", answers, None), call("second", answers, time.time() * 1000 + 60_000)]
    assert pool.submit(calls)
    assert (pool.queue_depth, pool.in_flight) == (2, 2)
    assert pool.withdraw(calls) == 2
    assert (pool.queue_depth, pool.in_flight) == (0, 0)
    assert answers == []


def test_a_waiting_call_is_answered_32004_at_its_deadline_after_many_withdrawn() -> None:
    """The queue's deadline heap is compacted as calls leave it; a call submitted at that very
    moment keeps its deadline."""
    pool = idle_pool()
    answers: Answers = []
    far_ms = time.time() * 1000 + 60_000
    for _ in range(1024):  # the heap keeps their deadlines until it is compacted
        withdrawn = [call("gone", answers, far_ms)]
        assert pool.submit(withdrawn)
        pool.withdraw(withdrawn)
    late = call("late", answers, time.time() * 1000 - 5)
    assert pool.submit([late])
    pool._watch()
    assert [(method, ok) for method, ok, _ in answers] == [("late", False)]
    assert answers[0][2]["code"] == -32004
    assert (pool.queue_depth, pool.in_flight) == (0, 0)
