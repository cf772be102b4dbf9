"""A reload whose workers cannot be started fails cleanly; the old generation keeps serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from executor.pool import Pool, ReloadFailed


def ready_pids(pool: Pool) -> list[int]:
    return [worker["pid"] for worker in pool.status()["workers"] if worker["state"] == "ready"]


async def test_a_reload_whose_workers_cannot_start_fails_and_the_old_ones_serve(
    methods_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = Pool(methods_dir, processes=2, max_tasks_per_child=0, queue_maxsize=10)
    await pool.start()
    try:
        before = ready_pids(pool)
        spawner = pool._spawner
        assert spawner is not None
        real_spawn = spawner.spawn
        spawned: list[int] = []

        def spawn_once_then_time_out(*args: Any, **kwargs: Any) -> Any:
            if spawned:  # the second worker of the new generation: its template is too slow
                raise TimeoutError("timed out")
            child = real_spawn(*args, **kwargs)
            spawned.append(child.pid)
            return child

        monkeypatch.setattr(spawner, "spawn", spawn_once_then_time_out)
        with pytest.raises(ReloadFailed) as failed:
            await pool.reload()
        assert failed.value.errors[0]["type"] == "TimeoutError"
        assert pool.generation == 1
        assert ready_pids(pool) == before
        assert await pool.run("echo", ["still here"], timeout_s=10) == (True, b'"still here"')
    finally:
        await pool.shutdown(5)
