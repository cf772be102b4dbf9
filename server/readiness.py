"""Readiness of one server instance, for ``GET /ready`` (design.md, "REST helpers").

An instance is ready when a generation of workers serves (at least one worker of the current
generation is ready for calls) and, with the bus on, Redis answers a ``PING`` within
:data:`PING_TIMEOUT_S`. Liveness (``/health_check``) is apart: a live instance may be not
ready, e.g. while Redis is unreachable; an orchestrator then sends it no traffic but keeps it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from executor.pool import Pool

if TYPE_CHECKING:  # redis is the bus's: loaded by the bus, never when it is off
    import redis.asyncio

__all__ = ["PING_TIMEOUT_S", "Readiness"]

logger = logging.getLogger(__name__)

#: How long a ``PING`` to the bus's Redis may take before the bus counts as not ready, seconds.
PING_TIMEOUT_S = 1.0

#: The value of a check that passed.
OK = "ok"


class Readiness:
    """The checks behind ``GET /ready``.

    Args:
        pool: the process pool whose current generation must serve.
        bus_client: the bus's Redis client, or None when the bus is off (no bus check).
        ping_timeout_s: bound of the Redis ``PING``, seconds.

    A change of the outcome is logged once (probes ask every few seconds): WARNING with what
    is not ready, INFO when ready again.
    """

    def __init__(
        self,
        pool: Pool,
        bus_client: redis.asyncio.Redis | None = None,
        ping_timeout_s: float = PING_TIMEOUT_S,
    ) -> None:
        self.pool = pool
        self.bus_client = bus_client
        self.ping_timeout_s = ping_timeout_s
        self._last_problems: list[str] = []

    def workers_problem(self) -> str | None:
        """None when a worker of the current generation is ready; else what is missing."""
        generation = self.pool.generation
        if generation < 1:
            return "no generation of workers has started yet"
        ready = [
            worker
            for worker in self.pool.status()["workers"]
            if worker["generation"] == generation and worker["state"] == "ready"
        ]
        if not ready:
            return f"no worker of generation {generation} is ready"
        return None

    async def bus_problem(self) -> str | None:
        """None when the bus is off or Redis answers ``PING`` in time; else what failed."""
        if self.bus_client is None:
            return None
        import redis.exceptions

        try:
            await asyncio.wait_for(self.bus_client.ping(), self.ping_timeout_s)
        except TimeoutError:
            return f"Redis did not answer PING within {self.ping_timeout_s:g} s"
        except (redis.exceptions.RedisError, OSError) as exc:
            return f"Redis cannot be reached: {type(exc).__name__}: {exc}"
        return None

    async def check(self) -> dict[str, Any]:
        """Run every check.

        Returns:
            ``{"ready": bool, "generation": int, "checks": {"workers": str, "bus": str},
            "not_ready": [name, ...]}``: each check is ``"ok"``, ``"off"`` (bus only) or the
            problem in words; ``not_ready`` lists the checks that failed.
        """
        workers = self.workers_problem()
        bus = await self.bus_problem()
        checks = {
            "workers": workers or OK,
            "bus": "off" if self.bus_client is None else (bus or OK),
        }
        not_ready = [name for name, problem in (("workers", workers), ("bus", bus)) if problem]
        self._log_change([f"{name}: {checks[name]}" for name in not_ready])
        return {
            "ready": not not_ready,
            "generation": self.pool.generation,
            "checks": checks,
            "not_ready": not_ready,
        }

    def _log_change(self, problems: list[str]) -> None:
        if problems == self._last_problems:
            return
        if problems:
            logger.warning("not ready: %s", "; ".join(problems))
        else:
            logger.info("ready")
        self._last_problems = problems
