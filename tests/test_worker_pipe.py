"""A worker process driven through its pipes, frames written as the server may coalesce them.

executor.framing: the server may write several frames at once (calls, then a CANCEL or a
WITHDRAW of them); the worker answers every call exactly once and exits 0 at end of input once
its calls are answered.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from executor import framing
from tests.support import PROJECT_DIR, SHIPPED_METHODS

DEADLINE_S = 15.0
CANCELLED = {
    "code": -32001,
    "message": "the call was cancelled at its time limit",
    "data": {"reason": "cancelled"},
}


class _Worker:
    """``python -m executor.worker`` on two pipes, with the shipped methods by default."""

    def __init__(self, concurrency: int = 16, methods: Path = SHIPPED_METHODS) -> None:
        to_worker_r, self.to_worker = os.pipe()
        self.from_worker, from_worker_w = os.pipe()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "executor.worker",
                str(to_worker_r),
                str(from_worker_w),
                str(methods),
                "0",
                "30",
                str(concurrency),
                "1",
            ],
            cwd=PROJECT_DIR,
            pass_fds=(to_worker_r, from_worker_w),
        )
        os.close(to_worker_r)
        os.close(from_worker_w)
        self._buffer = b""
        kind, _, payload = self.read_events(1)[0]
        assert kind == framing.READY, payload

    def write(self, data: bytes) -> None:
        os.write(self.to_worker, data)

    def read_events(self, count: int) -> list[tuple[int, int, bytes]]:
        """The next ``count`` frames (kind, call id, payload); fail past DEADLINE_S."""
        events: list[tuple[int, int, bytes]] = []
        header = framing.EVENT_HEADER
        deadline = time.monotonic() + DEADLINE_S
        while len(events) < count:
            while len(self._buffer) >= header.size:
                length, kind, call_id = header.unpack_from(self._buffer)
                end = header.size + length
                if len(self._buffer) < end:
                    break
                if kind != framing.LOG:
                    events.append((kind, call_id, self._buffer[header.size : end]))
                self._buffer = self._buffer[end:]
            if len(events) >= count:
                break
            left = deadline - time.monotonic()
            assert left > 0, f"only {events} of {count} frames came"
            if select.select([self.from_worker], [], [], left)[0]:
                chunk = os.read(self.from_worker, 1 << 16)
                assert chunk, f"the worker closed its pipe after {events}"
                self._buffer += chunk
        return events

    def answers(self, count: int) -> dict[int, tuple[int, Any]]:
        """The next ``count`` RESULT/ERROR answers by call id; each call answered once."""
        found: dict[int, tuple[int, Any]] = {}
        for kind, call_id, payload in self.read_events(count):
            assert kind in (framing.RESULT, framing.ERROR), (kind, payload)
            assert call_id not in found, f"call {call_id} answered twice"
            found[call_id] = (kind, json.loads(payload))
        return found

    def close_input(self) -> None:
        """End of input: the server closed its end of the pipe."""
        if self.to_worker >= 0:
            os.close(self.to_worker)
            self.to_worker = -1

    def end_input(self) -> int:
        """Close the input pipe; the worker's exit code."""
        self.close_input()
        return self.process.wait(DEADLINE_S)

    def kill(self) -> None:
        """Kill the worker if it still runs; close both pipes."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.close_input()
        if self.from_worker >= 0:
            os.close(self.from_worker)
            self.from_worker = -1


@pytest.fixture
def worker() -> Iterator[_Worker]:
    started = _Worker()
    yield started
    started.kill()


def _call(call_id: int, method: str, params: Any) -> framing.CallTuple:
    return (call_id, method, params, {"request_id": f"r{call_id}"})


def test_calls_withdrawn_or_cancelled_in_the_same_write_are_answered_once(
    worker: _Worker,
) -> None:
    worker.write(
        framing.pack_calls([_call(1, "greetings.greet_later", ["a", 5])])
        + framing.pack_withdraw([1])
        + framing.pack_calls([_call(2, "greetings.greet_later", ["b", 5])])
        + framing.pack_cancel([2])
        + framing.pack_withdraw([2])
    )
    assert worker.answers(2) == {1: (framing.ERROR, CANCELLED), 2: (framing.ERROR, CANCELLED)}
    assert worker.end_input() == 0


def test_many_call_frames_in_one_write_are_each_answered_once(worker: _Worker) -> None:
    frames = b"".join(
        framing.pack_calls(
            [
                _call(call_id, "echo", [call_id])
                if call_id % 2
                else _call(call_id, "greetings.greet_later", [str(call_id), 0])
            ]
        )
        for call_id in range(1, 201)
    )
    worker.write(frames)
    answers = worker.answers(200)
    assert answers == {
        call_id: (framing.RESULT, call_id if call_id % 2 else f"Hello, {call_id}!")
        for call_id in range(1, 201)
    }
    assert worker.end_input() == 0


def test_a_cancelled_call_in_a_thread_is_blocked_then_answered_once(worker: _Worker) -> None:
    worker.write(framing.pack_calls([_call(7, "sleep", [0.2])]) + framing.pack_cancel([7]))
    blocked, answer = worker.read_events(2)
    assert blocked == (framing.BLOCKED, 7, b"")
    assert answer == (framing.RESULT, 7, b"0.2")
    assert worker.end_input() == 0


def test_end_of_input_waits_for_the_calls_running() -> None:
    worker = _Worker(concurrency=1)
    try:
        worker.write(framing.pack_calls([_call(1, "sleep", [0.1])]))
        worker.close_input()  # while the call sleeps
        assert worker.answers(1) == {1: (framing.RESULT, 0.1)}
        assert worker.process.wait(DEADLINE_S) == 0
    finally:
        worker.kill()


def test_a_call_that_exits_the_worker_lets_the_answers_before_it_leave(tmp_path: Path) -> None:
    (tmp_path / "__init__.py").write_text(
        "def echo(value):\n    return value\n\n\ndef leave():\n    raise SystemExit(3)\n"
    )
    worker = _Worker(methods=tmp_path)
    try:
        # one read: the echo answers while the exit waits behind it in the same thread
        worker.write(framing.pack_calls([_call(1, "echo", ["kept"]), _call(2, "leave", None)]))
        assert worker.answers(1) == {1: (framing.RESULT, "kept")}
        assert worker.process.wait(DEADLINE_S) == 3
    finally:
        worker.kill()
