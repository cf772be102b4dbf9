"""Readiness checks (server/readiness.py) on a pool that has not started yet."""

from __future__ import annotations

import asyncio
from pathlib import Path

from executor.pool import Pool
from server.readiness import Readiness


def test_a_pool_that_has_not_started_is_not_ready(tmp_path: Path) -> None:
    pool = Pool(tmp_path, processes=1, max_tasks_per_child=0, queue_maxsize=1)
    outcome = asyncio.run(Readiness(pool).check())
    assert outcome["ready"] is False
    assert outcome["not_ready"] == ["workers"]
    assert outcome["checks"] == {
        "workers": "no generation of workers has started yet",
        "bus": "off",
    }
