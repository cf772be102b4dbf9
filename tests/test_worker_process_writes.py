"""The server's side of a worker's pipes (executor.process.WorkerProcess), with a real worker.

The first call frame of a turn of the event loop is written at once; the frames queued after
it in the same turn leave together: fewer system calls and fewer wake-ups of the worker per
call under load. These tests count the writes on the worker's input pipe and check that every
call is still answered.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from executor import framing, process
from executor.process import COALESCE_FRAMES, Spawner, WorkerProcess

METHODS_DIR = Path(__file__).resolve().parent.parent / "methods"


class _Worker:
    """A real worker (a new interpreter, no template) whose answers are collected."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.spawner = Spawner(loop, use_template=False)
        self.results: dict[int, bytes] = {}
        self.ready = loop.create_future()
        self.exited = loop.create_future()
        self.answered = asyncio.Event()
        self.expected = 0
        args = [str(METHODS_DIR), "0", str(logging.WARNING), "64", "1"]
        self.process = WorkerProcess(self.spawner, args, self._on_event, self._on_exit)

    def _on_event(self, kind: int, call_id: int, payload: bytes) -> None:
        if kind == framing.READY and not self.ready.done():
            self.ready.set_result(None)
        elif kind in (framing.RESULT, framing.ERROR):
            self.results[call_id] = payload
            if len(self.results) >= self.expected:
                self.answered.set()

    def _on_exit(self, facts: object) -> None:
        if not self.exited.done():
            self.exited.set_result(facts)

    async def stop(self) -> None:
        """Kill the worker and wait until its process is reaped."""
        self.process.end_now()
        deadline = self.loop.time() + 10
        while self.process.child.poll() is None and self.loop.time() < deadline:
            await asyncio.sleep(0.01)

    def send_echo_calls(self, call_ids: range) -> None:
        """One frame per call, as the pool sends a lone call."""
        self.expected += len(call_ids)
        for call_id in call_ids:
            self.process.send(framing.pack_calls([(call_id, "echo", [call_id], None)]))


@pytest.fixture
async def worker() -> AsyncIterator[_Worker]:
    """A real worker, ready for calls; killed after the test."""
    started = _Worker(asyncio.get_running_loop())
    try:
        await asyncio.wait_for(started.ready, 30)
        yield started
    finally:
        await started.stop()


@pytest.fixture
def count_writes(monkeypatch: pytest.MonkeyPatch) -> dict[int, int]:
    """Count ``os.write`` calls per descriptor."""
    counts: dict[int, int] = {}
    real_write = os.write

    def counting_write(fd: int, data: bytes | bytearray | memoryview) -> int:
        counts[fd] = counts.get(fd, 0) + 1
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", counting_write)
    return counts


async def test_the_first_frame_of_a_turn_leaves_at_once_the_rest_together(
    worker: _Worker, count_writes: dict[int, int]
) -> None:
    worker.send_echo_calls(range(1, 2))
    assert count_writes[worker.process.to_worker] == 1  # a lone call never waits
    worker.send_echo_calls(range(2, 5))
    assert count_writes[worker.process.to_worker] == 1  # not yet: at the end of the turn
    await asyncio.wait_for(worker.answered.wait(), 30)
    assert count_writes[worker.process.to_worker] == 2
    assert sorted(worker.results) == [1, 2, 3, 4]
    assert worker.results[2] == b"2"


async def test_a_crowd_of_frames_leaves_without_waiting_for_the_turn(
    worker: _Worker, count_writes: dict[int, int]
) -> None:
    worker.send_echo_calls(range(1, COALESCE_FRAMES + 2))  # the first, then a crowd
    assert count_writes[worker.process.to_worker] == 2  # both written at once
    last = COALESCE_FRAMES + 5
    worker.send_echo_calls(range(COALESCE_FRAMES + 2, last + 1))
    await asyncio.wait_for(worker.answered.wait(), 30)
    assert count_writes[worker.process.to_worker] == 3
    assert sorted(worker.results) == list(range(1, last + 1))


async def test_frames_queued_before_close_input_still_reach_the_worker(worker: _Worker) -> None:
    worker.send_echo_calls(range(1, 3))
    worker.process.close_input()  # in the same turn: the frames are written first
    await asyncio.wait_for(worker.exited, 30)
    assert sorted(worker.results) == [1, 2]


async def test_a_fork_that_timed_out_starts_no_second_worker_on_the_same_pipes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spawner = Spawner(asyncio.get_running_loop())
    await spawner.start()
    template = spawner._template
    assert template is not None and template.ready
    monkeypatch.setattr(process, "FORK_TIMEOUT_S", 0.2)
    os.kill(template.pid, signal.SIGSTOP)  # it gets the request but cannot answer in time
    to_worker_read, to_worker = os.pipe()
    from_worker, from_worker_write = os.pipe()
    try:
        with pytest.raises(TimeoutError):
            spawner.spawn(to_worker_read, from_worker_write, [str(METHODS_DIR), "0", "30", "1"])
        assert spawner.started == 0 and spawner.forked == 0  # no worker started without it
    finally:
        os.kill(template.pid, signal.SIGCONT)
        for fd in (to_worker_read, to_worker, from_worker, from_worker_write):
            os.close(fd)
        spawner.close()
