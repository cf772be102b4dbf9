"""Unit tests of a worker's thread pool for plain functions (executor.worker._Threads).

design.md "Concurrency inside a worker": plain functions run in the worker's threads, up to
the concurrency limit; a crowd of blocking calls gets a thread each, sleeping threads are woken
before new ones start, and stopping lets the queued jobs finish.
"""

from __future__ import annotations

import asyncio
import functools
import os
import select
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from executor import framing
from executor.worker import _Channel, _Threads

DEADLINE_S = 10.0


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def pipe() -> Iterator[tuple[int, _Channel]]:
    """(read end, a channel writing the other end)."""
    read_end, write_end = os.pipe()
    yield read_end, _Channel(write_end)
    os.close(read_end)
    os.close(write_end)


def _read_call_ids(read_end: int, count: int) -> list[int]:
    """The call ids of the next ``count`` frames on the pipe; fail past DEADLINE_S."""
    data = b""
    header = framing.EVENT_HEADER
    deadline = time.monotonic() + DEADLINE_S
    while True:
        call_ids, position = [], 0
        while len(data) - position >= header.size:
            length, _, call_id = header.unpack_from(data, position)
            position += header.size + length
            call_ids.append(call_id)
        if len(call_ids) >= count:
            return call_ids
        left = deadline - time.monotonic()
        assert left > 0, f"only {call_ids} of {count} frames came"
        if select.select([read_end], [], [], left)[0]:
            data += os.read(read_end, 1 << 16)


async def _until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition()`` holds; fail past DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


class _Blocking:
    """Jobs that report their start and thread, then wait until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.most_running = 0
        self.started = 0
        self.finished = 0
        self.thread_ids: set[int] = set()

    def job(self) -> None:
        with self.lock:
            self.started += 1
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.thread_ids.add(threading.get_ident())
        self.release.wait(DEADLINE_S)
        with self.lock:
            self.running -= 1
            self.finished += 1


def _call_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("sbusr-call-")]


def test_each_of_a_crowd_of_blocking_jobs_gets_a_thread(
    loop: asyncio.AbstractEventLoop,
) -> None:
    threads = _Threads(8, loop)
    jobs = _Blocking()

    async def scenario() -> None:
        for _ in range(5):
            threads.submit(jobs.job)
        await _until(lambda: jobs.started == 5)
        jobs.release.set()
        await _until(lambda: jobs.finished == 5)

    loop.run_until_complete(scenario())
    threads.stop()
    assert jobs.most_running == 5
    assert len(jobs.thread_ids) == 5


def test_the_limit_bounds_the_jobs_running_at_once(
    loop: asyncio.AbstractEventLoop,
) -> None:
    threads = _Threads(2, loop)
    jobs = _Blocking()

    async def scenario() -> None:
        for _ in range(4):
            threads.submit(jobs.job)
        await _until(lambda: jobs.started == 2)
        await asyncio.sleep(0.02)  # growth had many chances: still two
        assert jobs.started == 2
        jobs.release.set()
        await _until(lambda: jobs.finished == 4)

    loop.run_until_complete(scenario())
    threads.stop()
    assert jobs.most_running == 2
    assert len(jobs.thread_ids) == 2


def test_sleeping_threads_are_woken_before_new_ones_start(
    loop: asyncio.AbstractEventLoop,
) -> None:
    threads = _Threads(16, loop)
    first, second = _Blocking(), _Blocking()

    async def scenario() -> None:
        for _ in range(3):
            threads.submit(first.job)
        await _until(lambda: first.started == 3)
        first.release.set()
        await _until(lambda: first.finished == 3)
        await _until(lambda: threads._awake == 0)  # all three asleep
        for _ in range(3):
            threads.submit(second.job)
        await _until(lambda: second.started == 3)
        second.release.set()
        await _until(lambda: second.finished == 3)

    loop.run_until_complete(scenario())
    threads.stop()
    assert second.thread_ids == first.thread_ids
    assert threads._threads == 3


def test_a_burst_of_short_jobs_all_run_once_and_stop_ends_every_thread(
    loop: asyncio.AbstractEventLoop,
) -> None:
    before = set(_call_threads())
    threads = _Threads(4, loop)
    ran: list[int] = []

    async def scenario() -> None:
        for round_number in range(5):
            for index in range(200):
                threads.submit(functools.partial(ran.append, round_number * 200 + index))
            await asyncio.sleep(0)
        await _until(lambda: len(ran) == 1000)

    loop.run_until_complete(scenario())
    assert sorted(ran) == list(range(1000))
    threads.stop()
    for thread in set(_call_threads()) - before:
        thread.join(DEADLINE_S)
        assert not thread.is_alive()


def test_stop_lets_the_queued_jobs_finish(
    loop: asyncio.AbstractEventLoop,
) -> None:
    threads = _Threads(1, loop)
    jobs = _Blocking()
    ran: list[int] = []

    async def scenario() -> None:
        threads.submit(jobs.job)
        await _until(lambda: jobs.started == 1)
        for number in range(3):
            threads.submit(functools.partial(ran.append, number))

    loop.run_until_complete(scenario())
    threads.stop()
    jobs.release.set()
    deadline = time.monotonic() + DEADLINE_S
    while len(ran) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    assert ran == [0, 1, 2]


def test_a_job_that_raises_is_logged_and_its_thread_serves_on(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    threads = _Threads(1, loop)
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    async def scenario() -> None:
        threads.submit(broken)
        threads.submit(lambda: ran.append("after"))
        await _until(lambda: ran == ["after"])

    loop.run_until_complete(scenario())
    threads.stop()
    assert "a call's thread failed" in caplog.text


def test_answers_of_queued_jobs_all_leave(
    loop: asyncio.AbstractEventLoop, pipe: tuple[int, _Channel]
) -> None:
    read_end, channel = pipe
    threads = _Threads(4, loop)

    def job(call_id: int) -> Callable[[], None]:
        return lambda: channel.send(framing.pack_event(framing.RESULT, call_id, b"1"))

    async def scenario() -> None:
        for call_id in range(1, 101):
            threads.submit(job(call_id))
        await asyncio.sleep(0)

    loop.run_until_complete(scenario())
    assert sorted(_read_call_ids(read_end, 100)) == list(range(1, 101))
    threads.stop()


def test_an_answer_leaves_while_the_job_queued_behind_it_blocks(
    loop: asyncio.AbstractEventLoop, pipe: tuple[int, _Channel]
) -> None:
    read_end, channel = pipe
    threads = _Threads(1, loop)
    blocking = _Blocking()

    def short() -> None:
        channel.send(framing.pack_event(framing.RESULT, 1, b"1"))

    async def scenario() -> None:
        threads.submit(short)
        threads.submit(blocking.job)  # queued behind it, taken by the same thread
        await _until(lambda: blocking.started == 1)
        deadline = time.monotonic() + DEADLINE_S
        while not select.select([read_end], [], [], 0)[0]:
            assert time.monotonic() < deadline, "the answer never left"
            await asyncio.sleep(0.001)

    loop.run_until_complete(scenario())
    assert _read_call_ids(read_end, 1) == [1]
    assert blocking.finished == 0
    blocking.release.set()
    threads.stop()
