"""Upkeep of the request stream: reclaim, dead letters, keeping long calls owned, trimming.

Run by :class:`Maintenance` every ``interval_s`` (a quarter of ``claim_idle_ms``, at most 5 s,
at least 50 ms), one step after the other:

* **touch** -- entries this consumer still runs get their idle time reset (``XCLAIM ...
  JUSTID`` in the TOUCH script, which counts no delivery), so a call running longer than
  ``claim_idle_ms`` is not taken over by another instance while its own is alive.
* **reclaim** -- ``XAUTOCLAIM sbusr:rpc sbusr <me> <claim_idle_ms> 0-0 COUNT <free>``: entries
  left pending by a dead (or stalled) instance. Each claimed entry's delivery count comes from
  ``XPENDING`` (the first read counts 1, each claim 1 more). Over ``max_deliveries`` -> the
  DEAD_LETTER script moves it to ``sbusr:rpc:dead`` (fields ``reason``, ``entry_id``,
  ``deliveries`` and the original fields) and acks it; no reply is sent. Otherwise, when its
  "answered" record ``sbusr:done:<entry id>`` exists it is only acked; else it is run.
* **trim** -- ``XTRIM sbusr:rpc MINID ~ <id>`` where ``<id>`` is, over every group of the
  stream, the oldest pending entry id, or the group's last-delivered id when it has none
  pending. Entries below it are delivered and acked in every group, so trimming never drops
  an entry that is pending or not yet delivered. (A producer-side ``XADD MAXLEN ~ N`` would:
  under a backlog it cuts entries nobody has read yet.)
* **dead letters** -- the retention bound of ``sbusr:rpc:dead`` (count and age,
  :meth:`server.bus.deadletters.DeadLetters.trim`).
* **forget** -- consumers of the group with nothing pending and idle for more than
  :data:`STALE_CONSUMER_MS` (dead instances) are deleted (``XGROUP DELCONSUMER``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import redis.asyncio
import redis.exceptions

from busclient import CONNECTION_ERRORS, UNUSABLE_ERRORS, Outage, as_text, cancel_and_wait
from server.bus import scripts
from server.bus.consumer import MAX_READ, BusConsumer, Entry
from server.bus.counters import BusCounters

if TYPE_CHECKING:
    from server.bus.deadletters import DeadLetters

__all__ = ["Maintenance", "STALE_CONSUMER_MS", "parse_id"]

logger = logging.getLogger(__name__)

#: Consumers with nothing pending and idle longer than this are deleted, milliseconds.
STALE_CONSUMER_MS = 3600 * 1000
#: How often stale consumers are looked for, seconds.
FORGET_INTERVAL_S = 60.0


def parse_id(entry_id: bytes | str) -> tuple[int, int]:
    """``"1700000000000-3"`` -> ``(1700000000000, 3)`` (stream ids compare as such tuples)."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)


class Maintenance:
    """The periodic upkeep of one consumer (see the module doc).

    Args:
        consumer: the consumer whose entries are touched and who runs reclaimed entries.
        claim_idle_ms: entries idle longer are reclaimed, milliseconds.
        max_deliveries: deliveries of an entry before it is dead-lettered.
        outage: the bus's shared outage tracker.
        counters: the bus's counters; the upkeep adds entries reclaimed and sets pending.
        deadletters: the dead-letter stream, trimmed every round; None: not trimmed here.
    """

    def __init__(
        self,
        consumer: BusConsumer,
        claim_idle_ms: int,
        max_deliveries: int,
        outage: Outage,
        counters: BusCounters,
        deadletters: DeadLetters | None = None,
    ) -> None:
        self.consumer = consumer
        self.deadletters = deadletters
        self.client: redis.asyncio.Redis = consumer.client
        self.keys = consumer.keys
        self.claim_idle_ms = claim_idle_ms
        self.max_deliveries = max_deliveries
        self.outage = outage
        self.counters = counters
        self.interval_s = min(5.0, max(0.05, claim_idle_ms / 4000.0))
        self.reclaiming = True
        self._task: asyncio.Task[None] | None = None
        self._forgot_at = 0.0

    def start(self) -> None:
        """Start the periodic task."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        """Stop the periodic task."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def _loop(self) -> None:
        while True:
            delay = self.interval_s
            try:
                await self.run_once()
            except CONNECTION_ERRORS as exc:
                delay = self.outage.failed(exc)
            except redis.exceptions.ResponseError as exc:
                if "NOGROUP" in str(exc) or "no such key" in str(exc):
                    try:
                        await self.consumer.ensure_group()
                    except UNUSABLE_ERRORS as again:
                        delay = self.outage.failed(again)
                else:  # e.g. OOM, READONLY: Redis refuses; wait like for an outage
                    delay = self.outage.failed(exc)
            await asyncio.sleep(delay)

    async def run_once(self) -> None:
        """One round: touch, then reclaim (unless stopping), trim, count pending, forget."""
        await self.touch()
        if self.reclaiming:
            await self.reclaim()
        await self.trim()
        if self.deadletters is not None:
            await self.deadletters.trim()
        summary = await self.client.xpending(self.keys.requests, self.keys.group)
        self.counters.pending = int(summary["pending"])
        if time.monotonic() - self._forgot_at > FORGET_INTERVAL_S:
            self._forgot_at = time.monotonic()
            await self.forget()

    async def touch(self) -> int:
        """Reset the idle time of the entries this consumer runs; returns how many."""
        running = [entry_id for entry_id in self.consumer.held]
        if not running:
            return 0
        touched = await scripts.TOUCH.run(
            self.client, [self.keys.requests], [self.keys.group, self.consumer.name, *running]
        )
        return int(touched)

    async def reclaim(self) -> int:
        """Claim idle entries of other (dead) consumers and run or dead-letter them.

        Returns:
            How many entries were claimed.
        """
        claimed_total = 0
        start = "0-0"
        while True:
            count = min(self.consumer.free(), MAX_READ)
            if count <= 0:
                return claimed_total
            start, entries, deleted = await self._autoclaim(start, count)
            if deleted:
                logger.warning(
                    "bus: %d pending entries had been deleted from %s before being answered: %s",
                    len(deleted),
                    self.keys.requests,
                    ", ".join(deleted[:10]),
                )
            fresh = [
                (entry_id, fields)
                for entry_id, fields in entries
                if entry_id not in self.consumer.held
            ]
            if fresh:
                claimed_total += len(fresh)
                self.counters.entries_reclaimed += len(fresh)
                await self._dispatch(fresh)
            if start == "0-0":
                return claimed_total

    async def _autoclaim(
        self, start: str, count: int
    ) -> tuple[str, list[tuple[str, dict[bytes, bytes]]], list[str]]:
        """One ``XAUTOCLAIM``: ``(next start id, [(entry id, fields), ...], deleted entry ids)``."""
        reply = await self.client.xautoclaim(
            self.keys.requests,
            self.keys.group,
            self.consumer.name,
            self.claim_idle_ms,
            start,
            count=count,
        )
        claimed = reply[1]
        deleted = [as_text(entry_id) for entry_id in reply[2]] if len(reply) > 2 else []
        # Redis 6.2 reports deleted entries as (id, None) among the claimed ones
        deleted += [as_text(entry_id) for entry_id, fields in claimed if fields is None]
        entries = [
            (as_text(entry_id), fields) for entry_id, fields in claimed if fields is not None
        ]
        return as_text(reply[0]), entries, deleted

    async def _dispatch(self, claimed: list[tuple[str, dict[bytes, bytes]]]) -> None:
        """Dead-letter, ack or run each freshly claimed entry."""
        pending = await self.client.xpending_range(
            self.keys.requests,
            self.keys.group,
            claimed[0][0],
            claimed[-1][0],
            len(claimed) + len(self.consumer.held) + 1,
            consumername=self.consumer.name,
        )
        deliveries = {as_text(item["message_id"]): int(item["times_delivered"]) for item in pending}
        pipe = self.client.pipeline(transaction=False)
        for entry_id, _ in claimed:
            pipe.exists(self.keys.done(entry_id))
        answered = await pipe.execute()
        for (entry_id, fields), done in zip(claimed, answered, strict=False):
            times = deliveries.get(entry_id, 0)
            entry = Entry(entry_id, fields)
            if times > self.max_deliveries:
                await self.consumer.dead_letter(
                    entry_id,
                    f"delivered {times - 1} times without an answer "
                    f"(max_deliveries {self.max_deliveries})",
                    times - 1,
                )
            elif done:
                self.consumer.answered_elsewhere(entry)
            else:
                logger.info("bus: reclaimed entry %s (delivery %d)", entry_id, times)
                self.consumer.take(entry)

    async def trim(self) -> int:
        """Trim the stream below the oldest entry some group still needs.

        Returns:
            How many entries ``XTRIM`` removed (``MINID ~``: whole nodes only).
        """
        groups = await self.client.xinfo_groups(self.keys.requests)
        if not groups:
            return 0
        floor: tuple[int, int] | None = None
        for group in groups:
            needed = parse_id(group["last-delivered-id"])
            if group["pending"]:
                summary = await self.client.xpending(self.keys.requests, group["name"])
                if summary["min"] is not None:
                    needed = min(needed, parse_id(summary["min"]))
            floor = needed if floor is None else min(floor, needed)
        if floor is None or floor == (0, 0):
            return 0
        milliseconds, sequence = floor
        return await self.client.xtrim(
            self.keys.requests, minid=f"{milliseconds}-{sequence}", approximate=True
        )

    async def forget(self) -> int:
        """Delete consumers of the group with nothing pending, idle over STALE_CONSUMER_MS."""
        forgotten = 0
        for consumer in await self.client.xinfo_consumers(self.keys.requests, self.keys.group):
            name = as_text(consumer["name"])
            if (
                consumer["pending"] == 0
                and consumer["idle"] > STALE_CONSUMER_MS
                and name != self.consumer.name
            ):
                await self.client.xgroup_delconsumer(self.keys.requests, self.keys.group, name)
                forgotten += 1
        if forgotten:
            logger.info("bus: forgot %d idle consumers of group %s", forgotten, self.keys.group)
        return forgotten
