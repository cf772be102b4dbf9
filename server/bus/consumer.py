"""The bus consumer: JSON-RPC requests from the Redis stream to the pool and back.

A thin adapter over :class:`server.jsonrpc.JsonRpcCore` (same strictness, batches and error
codes as HTTP). One consumer per server instance in group ``sbusr`` of stream ``sbusr:rpc``
(design.md, "Message bus"); its name is :func:`wire.names.instance_id`
(``<host>:<pid>:<random>``), so a restarted instance never inherits the entries of its
previous life: those are reclaimed like any dead instance's.

The path of one entry, top to bottom::

    _read()       XREADGROUP GROUP sbusr <me> COUNT <free capacity> BLOCK 1000 STREAMS sbusr:rpc >
    _run()        admission (:mod:`server.bus.admission`): a reply_to outside the allowed
                  pattern -> acked, not run; data over the body limit -> -32600, not parsed;
                  then JsonRpcCore.handle(data, deadline_ms); pool refused (busy): the entry
                  waits in memory, still pending, and is retried when capacity frees (never
                  answered -32003)
    _write()      one REPLY script for every answer ready since the last round trip:
                  per entry RPUSH reply_to, PEXPIRE reply_to notify_ttl_ms, XACK -- atomic
                  (see "Duplicates" below)

Capacity: an entry is read only when the pool can take it: ``free = min(queue_maxsize -
queue_depth - entries read but not yet submitted, queue_maxsize + processes - entries held)``.
So nothing is prefetched into memory beyond what the pool could hold anyway.

Group creation: ``XGROUP CREATE sbusr:rpc sbusr 0 MKSTREAM`` -- id ``0``, so requests added
before any server ever ran (or after Redis lost the group) are answered, not skipped.

Duplicates: a request runs twice only when its entry was reclaimed while its first run was
still going -- the first instance died mid-call (SIGKILL, crash), or could not reach Redis
for longer than ``claim_idle_ms`` (a live instance keeps its running entries owned, see
:mod:`server.bus.reclaim`). Even then the caller gets one reply: an entry delivered more than
once is answered through the record ``sbusr:done:<entry id>`` (``SET NX``, lives
``done_ttl_ms``), and only the record's first taker pushes a reply; a reclaimed entry whose
record exists is acked without running. Entries delivered once need no record (no memory).

Deadlines: an entry's optional field ``deadline_ms`` (Unix epoch milliseconds) bounds its
calls as ``X-Timeout-Ms`` does over HTTP. An entry read (or reclaimed) after its deadline is
acked without running: it is answered -32004 while its caller may still be reading its reply
list -- up to ``notify_ttl_ms`` past the deadline -- and acked without a reply after that. A
``deadline_ms`` that is not a number >= 0 is answered -32600 (id null) and nothing runs.

Reclaiming, dead letters, trimming and keeping long calls owned: :mod:`server.bus.reclaim`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging

import redis.asyncio
import redis.exceptions

from busclient import (
    CONNECTION_ERRORS,
    UNUSABLE_ERRORS,
    Outage,
    Outbox,
    as_text,
    cancel_and_wait,
    stream_entries,
)
from executor.pool import Pool
from server import tracing
from server.bus import scripts
from server.bus.admission import glob_matcher, oversize_response
from server.bus.counters import BusCounters
from server.bus.idempotent import answer_once
from server.idempotency import Idempotency
from server.jsonrpc import JsonRpcCore, Reply, error_reply
from wire.deadline import FIELD_DEADLINE_MS, now_ms, parse_deadline_ms
from wire.errors import InvalidRequest
from wire.keys import FIELD_DATA, FIELD_IDEMPOTENCY_KEY, FIELD_REPLY_TO, BusKeys
from wire.names import instance_id

__all__ = ["BusConsumer", "Entry", "READ_BLOCK_MS", "MAX_READ", "DEAD_MAXLEN"]

logger = logging.getLogger(__name__)

#: How long one XREADGROUP blocks, milliseconds.
READ_BLOCK_MS = 1000
#: Most entries one XREADGROUP (or XAUTOCLAIM) asks for.
MAX_READ = 500
#: Approximate bound of the dead-letter stream, entries (``XADD MAXLEN ~``).
DEAD_MAXLEN = 10000
#: Most answers one REPLY script call carries (Redis runs a script without interruption).
MAX_ANSWERS_PER_SCRIPT = 200
#: How often a consumer without capacity looks again, seconds (the pool is shared with HTTP,
#: whose calls finishing free capacity without telling the consumer).
CAPACITY_POLL_S = 0.02

_FIELD_DEADLINE = FIELD_DEADLINE_MS.encode()


class Entry:
    """One request entry held by this consumer.

    Attributes:
        entry_id: the stream entry id, e.g. ``"1700000000000-0"``.
        data: the JSON-RPC payload (bytes; empty when the field was missing: -32700).
        reply_to: the reply list key (bytes) or None.
        deadline: the ``deadline_ms`` field as sent (bytes) or None.
        idempotency_key: the field ``idempotency_key`` (bytes) or None.
        fields: every field of the entry (tracing reads ``traceparent`` and ``tracestate``).
    """

    __slots__ = ("entry_id", "data", "reply_to", "deadline", "idempotency_key", "fields")

    def __init__(self, entry_id: str, fields: dict[bytes, bytes] | None) -> None:
        fields = fields or {}
        self.entry_id = entry_id
        self.data = fields.get(FIELD_DATA.encode(), b"")
        self.reply_to = fields.get(FIELD_REPLY_TO.encode()) or None
        self.deadline = fields.get(_FIELD_DEADLINE)
        self.idempotency_key = fields.get(FIELD_IDEMPOTENCY_KEY.encode())
        self.fields = fields


class BusConsumer:
    """Serve JSON-RPC requests from the request stream with ``core``.

    Args:
        client: an asyncio Redis client whose socket timeout exceeds :data:`READ_BLOCK_MS`.
        keys: the bus key names.
        pool: the process pool (for its capacity).
        core: the JSON-RPC core.
        notify_ttl_ms: life of a reply list after a reply is pushed, milliseconds.
        done_ttl_ms: life of the "answered" record of an entry, milliseconds.
        outage: the bus's shared outage tracker (one log line per outage).
        counters: the bus's counters; this consumer adds entries read and dead-lettered.
        idempotency: the rules of the field ``idempotency_key`` (:mod:`server.bus.idempotent`);
            None: the field is ignored.
        max_body_bytes: longest ``data`` an entry may carry, bytes; longer: -32600, not run.
        reply_to_pattern: the Redis glob a ``reply_to`` must match; None: any key.
        dead_maxlen: approximate bound of the dead-letter stream as entries are moved there,
            entries (``SBUSR_DEADLETTER_MAX_ENTRIES``; the upkeep then trims it exactly).

    Start with :meth:`start`; stop with :meth:`stop_reading`, then :meth:`close`.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        keys: BusKeys,
        pool: Pool,
        core: JsonRpcCore,
        notify_ttl_ms: int,
        done_ttl_ms: int,
        outage: Outage,
        counters: BusCounters,
        idempotency: Idempotency | None = None,
        max_body_bytes: int = 1024 * 1024,
        reply_to_pattern: str | None = None,
        dead_maxlen: int = DEAD_MAXLEN,
    ) -> None:
        self.client = client
        self.idempotency = idempotency
        self.dead_maxlen = dead_maxlen
        self.keys = keys
        self.pool = pool
        self.core = core
        self.notify_ttl_ms = notify_ttl_ms
        self.done_ttl_ms = done_ttl_ms
        self.outage = outage
        self.counters = counters
        self.max_body_bytes = max_body_bytes
        self.reply_to_pattern = reply_to_pattern
        self._reply_to_allowed = glob_matcher(reply_to_pattern) if reply_to_pattern else None
        self.name = instance_id()
        self.max_held = pool.queue_maxsize + pool.processes
        self.held: dict[str, Entry] = {}  # read (or claimed) and not yet acked
        self.waiting: collections.deque[Entry] = collections.deque()  # refused by a busy pool
        self._unsubmitted = 0
        self._outbox: Outbox[tuple[Entry, bytes | None]] = Outbox()
        self._capacity = asyncio.Event()
        self._reading = False
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._runs: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ life cycle
    async def start(self) -> None:
        """Start reading and answering (returns at once; Redis may still be unreachable)."""
        self._reading = True
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self._writer = asyncio.get_running_loop().create_task(self._write())
        logger.info(
            "bus consumer %s reading %s (group %s)", self.name, self.keys.requests, self.keys.group
        )

    async def stop_reading(self) -> None:
        """Read no new entries; entries held keep running and are answered."""
        self._reading = False
        if self._reader is not None:
            await cancel_and_wait(self._reader)
            self._reader = None

    async def close(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` seconds for held entries to be answered and acked, then hand
        back what this consumer will not run (waiting or read during the stop) and stop.

        Entries still unanswered at the deadline stay pending; another instance reclaims them
        after ``claim_idle_ms``.
        """
        await self.stop_reading()
        try:
            async with asyncio.timeout(timeout_s):
                while len(self.held) > len(self.waiting):
                    self._capacity.clear()
                    await self._capacity.wait()
        except TimeoutError:
            logger.warning(
                "bus consumer %s: %d entries still unanswered at stop; they stay pending",
                self.name,
                len(self.held) - len(self.waiting),
            )
        try:
            await self._hand_back()
        except UNUSABLE_ERRORS as exc:
            logger.warning(
                "bus consumer %s: could not hand back its entries at stop (%s); they stay pending",
                self.name,
                exc,
            )
        if self._writer is not None:
            await cancel_and_wait(self._writer)
        for task in list(self._runs):
            task.cancel()

    # ------------------------------------------------------------------ capacity
    def free(self) -> int:
        """How many more entries the pool could take now (see the module doc)."""
        pool_room = self.pool.queue_maxsize - self.pool.queue_depth - self._unsubmitted
        return max(0, min(pool_room, self.max_held - len(self.held)))

    async def _wait_for_capacity(self) -> None:
        self._capacity.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._capacity.wait(), CAPACITY_POLL_S)

    # ------------------------------------------------------------------ reading
    async def ensure_group(self) -> None:
        """``XGROUP CREATE <stream> <group> 0 MKSTREAM``; an existing group is kept."""
        try:
            await self.client.xgroup_create(
                self.keys.requests, self.keys.group, id="0", mkstream=True
            )
            logger.info("bus: created consumer group %s on %s", self.keys.group, self.keys.requests)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _read(self) -> None:
        group_ready = False
        while self._reading:
            try:
                if not group_ready:
                    await self.ensure_group()
                    group_ready = True
                self._retry_waiting()
                count = min(self.free(), MAX_READ)
                if count <= 0:
                    await self._wait_for_capacity()
                    continue
                entries = stream_entries(
                    await self.client.xreadgroup(
                        self.keys.group,
                        self.name,
                        {self.keys.requests: ">"},
                        count=count,
                        block=READ_BLOCK_MS,
                    )
                )
                self.outage.recovered()
            except CONNECTION_ERRORS as exc:
                await asyncio.sleep(self.outage.failed(exc))
                continue
            except redis.exceptions.ResponseError as exc:
                if "NOGROUP" in str(exc):
                    logger.warning(
                        "bus: consumer group %s is gone (Redis restarted or flushed?); "
                        "creating it again",
                        self.keys.group,
                    )
                    group_ready = False
                else:  # e.g. OOM, READONLY: Redis refuses; wait like for an outage
                    await asyncio.sleep(self.outage.failed(exc))
                continue
            self.counters.entries_read += len(entries)
            for entry_id, fields in entries:
                self.take(Entry(entry_id, fields))

    def take(self, entry: Entry) -> None:
        """Hold ``entry`` and run it (it is pending to this consumer)."""
        if entry.entry_id in self.held:
            return
        self.held[entry.entry_id] = entry
        self._spawn(entry)

    def _spawn(self, entry: Entry) -> None:
        self._unsubmitted += 1
        task = asyncio.get_running_loop().create_task(self._run(entry))
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)

    def _retry_waiting(self) -> None:
        while self.waiting and self.free() > 0:
            self._spawn(self.waiting.popleft())

    async def _run(self, entry: Entry) -> None:
        """Run the entry's payload and queue its answer; a busy pool makes it wait, pending."""
        self._unsubmitted -= 1  # handle() submits to the pool before its first suspension
        refusal = self._refusal(entry)
        if refusal is not None:
            self._outbox.put((entry, refusal))
            return
        try:
            answer = self._handle(entry)
            if tracing.active is not None:
                answer = tracing.active.bus_entry(
                    self.keys.requests, entry.entry_id, entry.fields, answer
                )
            reply = await answer
        except (
            Exception
        ):  # a bug of ours: leave the entry pending; it is reclaimed, then dead-lettered
            logger.exception("bus: entry %s failed; it stays pending", entry.entry_id)
            self.held.pop(entry.entry_id, None)
            self._capacity.set()
            return
        if reply is None:  # past its deadline for longer than anyone waits: ack, no reply
            self._outbox.put((entry, b""))
            return
        if reply.busy:
            self.waiting.append(entry)
            return
        self._outbox.put((entry, reply.body))

    async def _handle(self, entry: Entry) -> Reply | None:
        """The reply of ``entry`` under its deadline (module doc, "Deadlines"); None: ack only."""
        deadline_ms = None
        if entry.deadline is not None:
            try:
                deadline_ms = parse_deadline_ms(entry.deadline)
            except ValueError as exc:
                logger.warning("bus: entry %s refused: %s", entry.entry_id, exc)
                return error_reply(InvalidRequest(data={"message": str(exc)}))
            missed_by_ms = now_ms() - deadline_ms
            if missed_by_ms > self.notify_ttl_ms:
                logger.info(
                    "bus: entry %s acked without running: its deadline passed %d ms ago",
                    entry.entry_id,
                    round(missed_by_ms),
                )
                return None
        context = {"request_id": "bus:" + entry.entry_id, "transport": "bus"}
        run = functools.partial(self.core.handle, entry.data, context, deadline_ms)
        if entry.idempotency_key is not None and self.idempotency is not None:
            return await answer_once(self.idempotency, entry.idempotency_key, entry.data, run)
        return await run()

    def _refusal(self, entry: Entry) -> bytes | None:
        """What to answer instead of running ``entry``, or None when it may run.

        A ``reply_to`` outside :attr:`reply_to_pattern`: ``b""`` (acked with no reply, the
        key untouched); ``data`` over :attr:`max_body_bytes`: the -32600 response. Both logged.
        """
        allowed = self._reply_to_allowed
        if entry.reply_to is not None and allowed is not None and not allowed(entry.reply_to):
            logger.warning(
                "bus: entry %s refused: reply_to %r does not match %s; acked, not run",
                entry.entry_id,
                entry.reply_to[:200],
                self.reply_to_pattern,
            )
            entry.reply_to = None
            return b""
        if len(entry.data) > self.max_body_bytes:
            logger.warning(
                "bus: entry %s refused: data of %d bytes is over the limit of %d; answered -32600",
                entry.entry_id,
                len(entry.data),
                self.max_body_bytes,
            )
            return oversize_response(len(entry.data), self.max_body_bytes)
        return None

    def answered_elsewhere(self, entry: Entry) -> None:
        """Ack ``entry`` without running it: its "answered" record exists (a reclaimed copy)."""
        self.held[entry.entry_id] = entry
        self._outbox.put((entry, b""))

    # ------------------------------------------------------------------ answering
    async def _write(self) -> None:
        """Send the answers queued since the last round trip (the writer task's loop)."""
        while True:
            items = await self._outbox.take()
            while True:
                try:
                    await self._send_answers(items)
                    self.outage.recovered()
                    break
                except CONNECTION_ERRORS as exc:  # keep the answers; the REPLY script is idempotent
                    await asyncio.sleep(self.outage.failed(exc))
            for entry, _ in items:
                self.held.pop(entry.entry_id, None)
            self._capacity.set()

    async def _send_answers(self, items: list[tuple[Entry, bytes | None]]) -> None:
        """Answer and ack ``items``, :data:`MAX_ANSWERS_PER_SCRIPT` per REPLY script call."""
        for start in range(0, len(items), MAX_ANSWERS_PER_SCRIPT):
            await self._send_chunk(items[start : start + MAX_ANSWERS_PER_SCRIPT])

    async def _send_chunk(self, items: list[tuple[Entry, bytes | None]]) -> None:
        args: list[object] = [
            self.keys.group,
            self.name,
            self.done_ttl_ms,
            self.notify_ttl_ms,
            self.keys.done(""),
        ]
        for entry, body in items:
            args += (entry.entry_id, entry.reply_to or b"", body or b"")
        try:
            outcomes = await scripts.REPLY.run(self.client, [self.keys.requests], args)
        except redis.exceptions.ResponseError as exc:  # not an outage: retrying would not help
            logger.error(
                "bus: answering %d entries failed (they stay pending): %s", len(items), exc
            )
            return
        for (entry, _), outcome in zip(items, outcomes, strict=False):
            if outcome == 0:
                logger.info(
                    "bus: entry %s was answered before (reclaimed copy); no second reply",
                    entry.entry_id,
                )
            elif isinstance(outcome, bytes):
                await self.dead_letter(
                    entry.entry_id,
                    "the reply could not be pushed to reply_to {!r}: {}".format(
                        entry.reply_to, outcome.decode(errors="replace")
                    ),
                    1,
                )

    async def dead_letter(self, entry_id: str, reason: str, deliveries: int) -> bool:
        """Move a pending entry to the dead-letter stream and ack it; False if not pending.

        Source: design.md ("after max_deliveries an entry goes to sbusr:rpc:dead with the reason").
        """
        moved = await scripts.DEAD_LETTER.run(
            self.client,
            [self.keys.requests, self.keys.dead],
            [self.keys.group, entry_id, reason, deliveries, self.dead_maxlen],
        )
        if moved:
            self.counters.entries_dead_lettered += 1
            logger.error("bus: entry %s dead-lettered to %s: %s", entry_id, self.keys.dead, reason)
        return bool(moved)

    # ------------------------------------------------------------------ stopping
    async def _hand_back(self) -> None:
        """Requeue the entries pending to this consumer that it holds but will not run."""
        pending = await self.client.xpending_range(
            self.keys.requests,
            self.keys.group,
            "-",
            "+",
            self.max_held + MAX_READ,
            consumername=self.name,
        )
        running = {entry_id for entry_id in self.held} - {entry.entry_id for entry in self.waiting}
        for item in pending:
            entry_id = as_text(item["message_id"])
            if entry_id not in running:
                new_id = await scripts.REQUEUE.run(
                    self.client, [self.keys.requests], [self.keys.group, self.name, entry_id]
                )
                logger.info("bus: entry %s handed back as %s", entry_id, new_id)
        if not await self.client.xpending_range(
            self.keys.requests, self.keys.group, "-", "+", 1, consumername=self.name
        ):
            await self.client.xgroup_delconsumer(self.keys.requests, self.keys.group, self.name)
