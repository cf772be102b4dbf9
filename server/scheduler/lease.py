"""Exactly once across instances: one Redis lease per job occurrence.

Every instance's scheduler sees the same due jobs in the shared database and would fire each
one. Before an occurrence runs, its instance claims it::

    SET <prefix>:job:<job id>:<scheduled run time, epoch ms> <instance> NX PX <ttl_ms>

(the key is :meth:`wire.keys.BusKeys.job_lease`).

Only the instance whose ``SET`` succeeded runs it; the others skip it. The scheduled run time
comes from the trigger (the same on every instance), so the key is the same everywhere. The
lease is never released: it marks the occurrence as taken, and it expires after the misfire
grace time plus the time limit (plus a margin), when no instance would still try to run that
occurrence.

Without Redis, :class:`LocalLease` claims everything: one instance is the supported setup.
"""

from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING

from wire.keys import BusKeys

if TYPE_CHECKING:  # redis is loaded by whoever builds a RedisLease (its client)
    import redis.asyncio

__all__ = [
    "LEASE_MARGIN_S",
    "LeaseUnavailable",
    "LocalLease",
    "RedisLease",
    "epoch_ms",
    "lease_ttl_ms",
]

logger = logging.getLogger(__name__)

#: added to misfire grace time + time limit when computing a lease's life
LEASE_MARGIN_S = 60.0


def epoch_ms(moment: datetime.datetime) -> int:
    """Milliseconds since the epoch of an aware datetime, rounded: the run time in a lease key."""
    return round(moment.timestamp() * 1000)


def lease_ttl_ms(misfire_grace_time_s: float | None, timeout_s: float) -> int:
    """Life of an occurrence's lease, ms: grace (1 h when unlimited) + time limit + margin."""
    grace_s = 3600.0 if misfire_grace_time_s is None else misfire_grace_time_s
    return int((grace_s + timeout_s + LEASE_MARGIN_S) * 1000)


class LeaseUnavailable(Exception):
    """The lease store cannot be asked (Redis unreachable or refusing): the occurrence is
    skipped (at most once rather than twice)."""


class LocalLease:
    """No Redis: every occurrence is this instance's (run a single instance)."""

    async def claim(self, job_id: str, run_time: datetime.datetime, ttl_ms: int) -> bool:
        """Always True."""
        return True

    async def close(self) -> None:
        """Nothing to close."""


class RedisLease:
    """Claims occurrences with ``SET NX PX`` on Redis (see module doc).

    Args:
        client: a ``redis.asyncio.Redis`` client; :meth:`close` closes it.
        keys: the key names of the bus (its prefix is SBUSR_BUS_PREFIX).
        instance: this instance's id, stored as the lease's value (who ran it).
    """

    def __init__(self, client: redis.asyncio.Redis, keys: BusKeys, instance: str) -> None:
        self.client = client
        self.keys = keys
        self.instance = instance

    async def claim(self, job_id: str, run_time: datetime.datetime, ttl_ms: int) -> bool:
        """Claim one occurrence for this instance.

        Returns:
            True when this instance got it and must run it; False when another one has it.

        Raises:
            LeaseUnavailable: Redis cannot be reached (its ``RedisError`` is the cause); the
                caller skips the occurrence (at most once rather than twice).
        """
        import redis.exceptions

        try:
            claimed = await self.client.set(
                self.keys.job_lease(job_id, epoch_ms(run_time)), self.instance, nx=True, px=ttl_ms
            )
        except redis.exceptions.RedisError as exc:
            raise LeaseUnavailable(str(exc)) from exc
        return bool(claimed)

    async def close(self) -> None:
        """Close the Redis connections."""
        await self.client.aclose()
