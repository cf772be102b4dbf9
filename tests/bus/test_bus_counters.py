"""What the bus counts in ``Bus.counters`` (read by ``GET /metrics``), in process, real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis

from executor.pool import Pool
from server.bus import Bus
from server.jsonrpc import JsonRpcCore
from settings import Settings
from tests.bus.test_bus_rpc import DEAD, GROUP, STREAM, receive, send

#: Short enough that the upkeep runs every 0.1 s and reclaims within a test.
CLAIM_IDLE_MS = 400


@pytest.fixture
async def pool(methods_dir: Path) -> AsyncIterator[Pool]:
    """A pool of one worker on a private copy of the example methods."""
    pool = Pool(methods_dir, processes=1, max_tasks_per_child=0, queue_maxsize=3)
    await pool.start()
    yield pool
    await pool.shutdown(5)


@pytest.fixture
def bus(pool: Pool, redis_url: str) -> Bus:
    """A bus on the test database, not started."""
    settings = Settings().replace(redis_url=redis_url, claim_idle_ms=CLAIM_IDLE_MS)
    return Bus(settings, pool, JsonRpcCore(pool, timeout_s=10, max_batch=4))


async def eventually(condition: Callable[[], bool], message: str, timeout_s: float = 10) -> None:
    """Poll ``condition()`` on the event loop until it holds; fail after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {message}"
        await asyncio.sleep(0.01)


async def stop(bus: Bus) -> None:
    await bus.stop_reading()
    await bus.close(5)


async def test_counts_entries_read_dead_lettered_and_pending(bus: Bus, raw: redis.Redis) -> None:
    await bus.start()
    try:
        raw.set("test:not-a-list", "text")
        send(raw, {"jsonrpc": "2.0", "method": "sleep", "params": [0.5], "id": 1})
        await eventually(lambda: bus.counters.pending == 1, "the running call seen as pending")
        assert (await asyncio.to_thread(receive, raw))["result"] == 0.5
        send(raw, {"jsonrpc": "2.0", "method": "echo", "params": ["y"], "id": 2}, "test:not-a-list")
        await eventually(lambda: raw.xlen(DEAD) == 1, "the dead letter")
        await eventually(lambda: bus.counters.pending == 0, "the pending count back to 0")
        assert (bus.counters.entries_read, bus.counters.entries_dead_lettered) == (2, 1)
        assert bus.counters.entries_reclaimed == 0
    finally:
        await stop(bus)


async def test_counts_entries_reclaimed_from_a_dead_consumer(bus: Bus, raw: redis.Redis) -> None:
    raw.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    send(raw, {"jsonrpc": "2.0", "method": "echo", "params": ["orphan"], "id": 3})
    raw.xreadgroup(GROUP, "dead-instance", {STREAM: ">"}, count=1)  # pending to a dead consumer
    await bus.start()
    try:
        assert (await asyncio.to_thread(receive, raw))["result"] == "orphan"
        await eventually(lambda: bus.counters.entries_reclaimed == 1, "the reclaim to be counted")
        assert bus.counters.entries_read == 0
    finally:
        await stop(bus)
