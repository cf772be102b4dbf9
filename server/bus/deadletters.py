"""Dead letters: list, replay and drop the entries of ``<prefix>:rpc:dead``; keep it bounded.

An entry is dead-lettered after ``max_deliveries`` (:mod:`server.bus.reclaim`) or when its reply
could not be pushed (:mod:`server.bus.consumer`). A dead entry's fields: ``reason``,
``entry_id`` (the request entry's id), ``deliveries``, then the request entry's own fields
(``data``, ``reply_to``, ``idempotency_key``, ``deadline_ms``, ...).

* :meth:`DeadLetters.page` -- newest first (``XREVRANGE``), ``limit`` at a time, older than
  ``before`` (an entry id, exclusive).
* :meth:`DeadLetters.replay` -- the REPLAY script, atomic: the request's fields are added to
  ``<prefix>:rpc`` as a new entry (same ``data`` and ``reply_to``), with ``replayed_from`` =
  the dead entry's id and, when asked, ``deadline_ms`` = now + ``timeout_ms``; the dead entry is
  deleted and the counter ``<prefix>:rpc:dead:replays`` incremented. Without ``timeout_ms``
  the request keeps the ``deadline_ms`` it had (if that has passed, it is answered -32004).
* :meth:`DeadLetters.drop` -- ``XDEL``.
* :meth:`DeadLetters.trim` -- the retention bound, run by the bus's upkeep every round:
  ``XTRIM MAXLEN <max_entries>`` then ``XTRIM MINID <now - max_age_s>`` (exact, not ``~``: the
  stream is small).
"""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio

from busclient import Script, as_text
from server.bus.counters import BusCounters
from server.bus.errors import MAX_PAGE, DeadLetterNotFound
from wire.codec import decode_strict
from wire.keys import FIELD_DATA, FIELD_REPLAYED_FROM, FIELD_REPLY_TO, BusKeys

__all__ = ["DeadLetterNotFound", "DeadLetters", "MAX_PAGE", "describe"]

#: Fields the dead-letter stream adds to a request entry's own.
_DEAD_FIELDS = ("reason", "entry_id", "deliveries")


#: Put a dead letter back on the request stream. KEYS: dead-letter stream, request stream,
#: replay counter. ARGV: dead entry id, deadline_ms ('' to keep the entry's own).
#: Returns the new entry id, or false when there is no such dead letter.
_REPLAY = Script("""
local entry = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if not entry[1] then return false end
local dropped = {reason = true, entry_id = true, deliveries = true, replayed_from = true}
if ARGV[2] ~= '' then dropped['deadline_ms'] = true end
local fields = {}
local values = entry[1][2]
for i = 1, #values, 2 do
  if not dropped[values[i]] then
    fields[#fields + 1] = values[i]
    fields[#fields + 1] = values[i + 1]
  end
end
fields[#fields + 1] = 'replayed_from'
fields[#fields + 1] = ARGV[1]
if ARGV[2] ~= '' then
  fields[#fields + 1] = 'deadline_ms'
  fields[#fields + 1] = ARGV[2]
end
local new_id = redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('INCR', KEYS[3])
return new_id
""")


def _methods(data: bytes) -> list[str]:
    """The method names of a JSON-RPC payload (one request or a batch); [] if unreadable."""
    try:
        payload = decode_strict(data)
    except (ValueError, RecursionError):
        return []
    requests = payload if isinstance(payload, list) else [payload]
    return [
        item["method"]
        for item in requests
        if isinstance(item, dict) and isinstance(item.get("method"), str)
    ]


def _entries(reply: Any) -> list[tuple[str, dict[bytes, bytes]]]:
    """``XRANGE``/``XREVRANGE`` reply -> ``[(entry id, fields), ...]`` (deleted ones left out)."""
    return [(as_text(entry_id), fields) for entry_id, fields in reply or [] if fields is not None]


def describe(entry_id: str, fields: dict[bytes, bytes], now_ms: int) -> dict[str, Any]:
    """One dead letter as the REST routes and the command line show it.

    Args:
        entry_id: the dead entry's id, e.g. ``"1700000000000-0"``.
        fields: its fields.
        now_ms: the time now, epoch milliseconds (for ``age_s``).

    Returns:
        ``{"entry_id", "request_entry_id", "reason", "deliveries", "method", "methods",
        "age_s", "reply_to", "data", "replayed_from"}``: ``method`` is the method of a single
        request (null for a batch or an unreadable payload), ``methods`` every method name;
        ``age_s`` seconds since it was dead-lettered; ``reply_to``, ``replayed_from`` null when
        absent; ``data`` the payload text.
    """
    text = {as_text(name): value for name, value in fields.items()}
    data = text.get(FIELD_DATA, b"")
    methods = _methods(data)
    deliveries = as_text(text.get("deliveries", b"0"))
    reply_to = text.get(FIELD_REPLY_TO)
    replayed_from = text.get(FIELD_REPLAYED_FROM)
    return {
        "entry_id": entry_id,
        "request_entry_id": as_text(text.get("entry_id", b"")),
        "reason": as_text(text.get("reason", b"")),
        "deliveries": int(deliveries) if deliveries.isdigit() else 0,
        "method": methods[0] if len(methods) == 1 and data.lstrip()[:1] != b"[" else None,
        "methods": methods,
        "age_s": round(max(0, now_ms - int(entry_id.partition("-")[0])) / 1000.0, 3),
        "reply_to": as_text(reply_to) if reply_to else None,
        "data": data.decode("utf-8", errors="replace"),
        "replayed_from": as_text(replayed_from) if replayed_from else None,
    }


class DeadLetters:
    """The dead-letter stream of one bus (module doc).

    Args:
        client: an asyncio Redis client (bytes replies).
        keys: the bus key names.
        counters: the bus's counters; :meth:`replay` adds to ``dead_letters_replayed``.
        max_entries: most dead letters kept (``SBUSR_DEADLETTER_MAX_ENTRIES``).
        max_age_s: dead letters older than this are trimmed, seconds
            (``SBUSR_DEADLETTER_MAX_AGE_S``).

    Every method may raise the redis-py errors of an outage (``ConnectionError``,
    ``TimeoutError``).
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        keys: BusKeys,
        counters: BusCounters,
        max_entries: int,
        max_age_s: int,
    ) -> None:
        self.client = client
        self.keys = keys
        self.counters = counters
        self.max_entries = max_entries
        self.max_age_s = max_age_s

    async def page(self, limit: int, before: str | None = None) -> dict[str, Any]:
        """A page of dead letters, newest first.

        Args:
            limit: most dead letters, 1 to :data:`MAX_PAGE`.
            before: only those older than this entry id (exclusive); None: from the newest.

        Returns:
            ``{"deadletters": [describe(...), ...], "total": <entries in the stream>,
            "replayed_total": <replays ever counted>, "next_before": <id> or null}``;
            ``next_before`` is the ``before`` of the next page, null on the last.
        """
        newest = "(" + before if before else "+"
        entries = _entries(
            await self.client.xrevrange(self.keys.dead, newest, "-", count=limit + 1)
        )
        now_ms = int(time.time() * 1000)
        shown = [describe(entry_id, fields, now_ms) for entry_id, fields in entries]
        more = len(shown) > limit
        shown = shown[:limit]
        total = await self.client.xlen(self.keys.dead)
        replayed = await self.client.get(self.keys.dead_replays)
        return {
            "deadletters": shown,
            "total": int(total),
            "replayed_total": int(replayed or 0),
            "next_before": shown[-1]["entry_id"] if more and shown else None,
        }

    async def get(self, entry_id: str) -> dict[str, Any]:
        """One dead letter (:func:`describe`).

        Raises:
            DeadLetterNotFound: no dead letter has this id.
        """
        entries = _entries(await self.client.xrange(self.keys.dead, entry_id, entry_id))
        if not entries:
            raise DeadLetterNotFound(entry_id)
        return describe(entry_id, entries[0][1], int(time.time() * 1000))

    async def replay(self, entry_id: str, timeout_ms: int | None = None) -> dict[str, Any]:
        """Put a dead letter back on the request stream (module doc; the REPLAY script).

        Args:
            entry_id: the dead entry's id.
            timeout_ms: a fresh deadline, milliseconds from now; None keeps the entry's own.

        Returns:
            ``{"entry_id": <the dead entry's id>, "replayed_as": <the new request entry id>,
            "deadline_ms": <epoch ms> or null}``.

        Raises:
            DeadLetterNotFound: no dead letter has this id (or it was just replayed).
        """
        deadline_ms = int(time.time() * 1000) + timeout_ms if timeout_ms is not None else None
        new_id = await _REPLAY.run(
            self.client,
            [self.keys.dead, self.keys.requests, self.keys.dead_replays],
            [entry_id, "" if deadline_ms is None else deadline_ms],
        )
        if not new_id:
            raise DeadLetterNotFound(entry_id)
        self.counters.dead_letters_replayed += 1
        return {"entry_id": entry_id, "replayed_as": as_text(new_id), "deadline_ms": deadline_ms}

    async def drop(self, entry_id: str) -> dict[str, Any]:
        """Delete one dead letter (``XDEL``).

        Returns:
            ``{"entry_id": <id>, "dropped": true}``.

        Raises:
            DeadLetterNotFound: no dead letter has this id.
        """
        if not await self.client.xdel(self.keys.dead, entry_id):
            raise DeadLetterNotFound(entry_id)
        return {"entry_id": entry_id, "dropped": True}

    async def trim(self) -> int:
        """Apply the retention bound (module doc); returns how many dead letters were removed."""
        removed = await self.client.xtrim(
            self.keys.dead, maxlen=self.max_entries, approximate=False
        )
        oldest_kept_ms = int(time.time() * 1000) - self.max_age_s * 1000
        removed += await self.client.xtrim(
            self.keys.dead, minid=f"{max(0, oldest_kept_ms)}-0", approximate=False
        )
        return int(removed)
