"""Calls a worker never read when it ended (still in its input pipe): they run on another
worker, unless they waited past their time limit or nobody is left to run them (real worker
processes, driven through the pool's API)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from executor.pool import Call, Pool

METHODS = '''
import os, time
from pathlib import Path


async def hog_then_exit(marker, seconds, code):
    """Write ``marker``, block the event loop ``seconds`` (frames sent now stay unread), exit."""
    Path(marker).write_text("hogging")
    time.sleep(seconds)
    os._exit(code)


def pid():
    return os.getpid()


def sleep(seconds):
    time.sleep(seconds)
    return os.getpid()
'''

Answers = dict[str, dict[str, Any]]


@pytest.fixture
def unread_methods(methods_dir: Path) -> Path:
    (methods_dir / "unread.py").write_text(METHODS)
    return methods_dir


def call(method: str, params: list[Any], answers: Answers, key: str, timeout_s: float) -> Call:
    def on_done(ok: bool, payload: bytes) -> None:
        assert key not in answers, f"{key} answered twice"
        answers[key] = {"ok": ok, "value": json.loads(payload)}

    return Call(method, params, on_done, timeout_s)


async def poll(condition: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def one_worker_pool(methods: Path, concurrency: int) -> Pool:
    """A started pool of one worker that runs up to ``concurrency`` calls at once."""
    pool = Pool(
        methods,
        processes=1,
        max_tasks_per_child=0,
        queue_maxsize=100,
        worker_concurrency=concurrency,
    )
    await pool.start()
    return pool


@pytest.fixture
async def pool(unread_methods: Path) -> AsyncIterator[Pool]:
    pool = await one_worker_pool(unread_methods, 4)
    yield pool
    await pool.shutdown(5)


async def block_the_worker(pool: Pool, answers: Answers, marker: Path, seconds: float) -> None:
    """Start a call that blocks the worker's loop for ``seconds``, then ends the worker."""
    pool.submit([call("unread.hog_then_exit", [str(marker), seconds, 3], answers, "hog", 30)])
    await poll(marker.exists)


async def test_unread_calls_run_on_the_replacement(pool: Pool, tmp_path: Path) -> None:
    answers: Answers = {}
    await block_the_worker(pool, answers, tmp_path / "hogging", 0.5)
    pool.submit([call("unread.pid", [], answers, f"pid{n}", 30) for n in range(3)])
    await poll(lambda: len(answers) == 4)
    assert answers["hog"]["value"]["code"] == -32002
    assert all(answers[f"pid{n}"]["ok"] for n in range(3)), answers
    assert pool.in_flight == 0


async def test_a_withdrawn_unread_call_is_still_answered_once(pool: Pool, tmp_path: Path) -> None:
    answers: Answers = {}
    observed: list[tuple[str, bool]] = []
    pool.observer = lambda method, ok, payload, elapsed_s, context: observed.append((method, ok))
    await block_the_worker(pool, answers, tmp_path / "hogging", 0.5)
    left = call("unread.pid", [], answers, "left", 30)
    pool.submit([left])
    pool.withdraw([left])  # sent, so "running": its answer will be dropped
    await poll(lambda: len(observed) == 2)
    assert sorted(observed) == [("unread.hog_then_exit", False), ("unread.pid", False)]
    assert "left" not in answers and pool.in_flight == 0


async def test_an_unread_call_past_its_time_limit_is_not_run_again(
    unread_methods: Path, tmp_path: Path
) -> None:
    pool = await one_worker_pool(unread_methods, 2)
    try:
        answers: Answers = {}
        pool.submit([call("unread.sleep", [1.5], answers, "sleeper", 30)])  # a thread
        await block_the_worker(pool, answers, tmp_path / "hogging", 2.5)
        # waits in the queue (the worker is full) until the sleeper ends at ~1.5 s, is sent
        # then and stays unread until the worker ends at ~2.5 s: past its 2 s, never started
        pool.submit([call("unread.sleep", [0.1], answers, "late", 2.0)])
        await poll(lambda: "late" in answers)
        late = answers["late"]["value"]
        assert late["code"] == -32001 and late["data"]["reason"] == "queued", late
    finally:
        await pool.shutdown(5)


async def test_shutdown_answers_unread_calls_when_no_worker_is_left(
    unread_methods: Path, tmp_path: Path
) -> None:
    pool = await one_worker_pool(unread_methods, 4)
    answers: Answers = {}
    await block_the_worker(pool, answers, tmp_path / "hogging", 0.5)
    pool.submit([call("unread.pid", [], answers, f"pid{n}", 30) for n in range(3)])
    # no replacement starts while the pool shuts down: the unread calls cannot wait for one
    # (a grace of 10 minutes would run out first)
    await asyncio.wait_for(pool.shutdown(600), 30)
    for n in range(3):
        error = answers[f"pid{n}"]["value"]
        assert error["code"] == -32001 and error["data"]["reason"] == "shutdown", error
