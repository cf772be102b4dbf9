"""Calls read from the bus run side by side in a worker, like HTTP calls."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import redis

from tests.bus.test_bus_rpc import receive, send
from tests.support import ServerProcess

CONCURRENCY = Path(__file__).parent.parent / "fixtures" / "concurrency.py"


def test_bus_calls_overlap_in_one_worker(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis, methods_dir: Path
) -> None:
    shutil.copy(CONCURRENCY, methods_dir / "conc.py")
    bus_server(env={"SBUSR_POOL_PROCESSES": "1"})
    for number in range(3):
        send(
            raw, {"jsonrpc": "2.0", "method": "conc.meet_async", "params": ["bus", 6], "id": number}
        )
    for number in range(3, 6):
        send(
            raw,
            {"jsonrpc": "2.0", "method": "conc.meet_blocking", "params": ["bus", 6], "id": number},
        )
    replies = [receive(raw) for _ in range(6)]
    assert sorted(reply["id"] for reply in replies) == list(range(6))
    assert all(reply["result"] is True for reply in replies), replies
