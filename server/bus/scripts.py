"""The Lua scripts of the bus consumer, each atomic on the Redis server (Redis ``EVALSHA``).

They are sent by SHA inside pipelines; a Redis that lost them (restarted) answers
``NOSCRIPT``, and :meth:`Script.load` sends them again. Keys are always passed in ``KEYS``.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import redis.asyncio
import redis.exceptions

__all__ = ["Script", "REPLY", "DEAD_LETTER", "TOUCH", "REQUEUE"]


class Script:
    """One Lua script, known by its SHA1.

    Args:
        source: the Lua text.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def load(self, client: redis.asyncio.Redis) -> None:
        """Send the script to Redis (``SCRIPT LOAD``)."""
        await client.script_load(self.source)

    def queue(self, pipe: Any, keys: Sequence[Any], args: Sequence[Any]) -> None:
        """Add an ``EVALSHA`` of the script to ``pipe`` (a redis-py pipeline)."""
        pipe.evalsha(self.sha, len(keys), *keys, *args)

    async def run(self, client: redis.asyncio.Redis, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run the script now, loading it first when Redis does not know it."""
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            await self.load(client)
            return await client.evalsha(self.sha, len(keys), *keys, *args)


#: Answer one request entry, at most once per entry id.
#: KEYS: done record, request stream, [reply list]. ARGV: group, entry id, done record TTL (ms),
#: response text ('' for none), reply list TTL (ms), consumer.
#: When this consumer's delivery is the only one there ever was (XPENDING: owner is this
#: consumer, delivery count 1) no other copy can exist, so no record is needed. Otherwise the
#: "answered" record is taken with SET NX: only its first taker replies.
#: Returns 1 when this call answered, 0 when an earlier one had (the entry is acked either way).
REPLY = Script("""
local pending = redis.pcall('XPENDING', KEYS[2], ARGV[1], ARGV[2], ARGV[2], 1)
local first
if type(pending) == 'table' and not pending.err and pending[1]
    and pending[1][2] == ARGV[6] and tonumber(pending[1][4]) == 1 then
  first = true
else
  first = redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[3])
end
if first and KEYS[3] and ARGV[4] ~= '' then
  redis.call('RPUSH', KEYS[3], ARGV[4])
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
end
redis.pcall('XACK', KEYS[2], ARGV[1], ARGV[2])
if first then return 1 end
return 0
""")

#: Move one pending entry to the dead-letter stream, once.
#: KEYS: request stream, dead-letter stream. ARGV: group, entry id, reason, deliveries,
#: dead-letter stream MAXLEN (approximate).
#: The dead entry's fields: reason, entry_id, deliveries, then the original fields.
#: Returns 1 when moved, 0 when the entry was no longer pending.
DEAD_LETTER = Script("""
local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if acked == 1 then
  local fields = {'reason', ARGV[3], 'entry_id', ARGV[2], 'deliveries', ARGV[4]}
  if entry[1] then
    for _, value in ipairs(entry[1][2]) do fields[#fields + 1] = value end
  end
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', unpack(fields))
end
return acked
""")

#: Reset the idle time of entries this consumer is still working on, so no other instance
#: reclaims them (XCLAIM ... JUSTID does not count a delivery). Entries another consumer
#: owns by now are left alone.
#: KEYS: request stream. ARGV: group, consumer, entry ids...  Returns the number touched.
TOUCH = Script("""
local touched = 0
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if pending[1] and pending[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    touched = touched + 1
  end
end
return touched
""")

#: Hand a pending entry this consumer will not run back to the stream: a copy is added at
#: its end (new entry id, same fields) and the original acked, so any instance reads it at
#: once instead of after claim_idle_ms. Only when this consumer still owns the entry.
#: KEYS: request stream. ARGV: group, consumer, entry id.  Returns the new id or false.
REQUEUE = Script("""
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if not (pending[1] and pending[1][2] == ARGV[2]) then return false end
local entry = redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
if not entry[1] then return false end
return redis.call('XADD', KEYS[1], '*', unpack(entry[1][2]))
""")
