"""Lua scripts sent by SHA (``EVALSHA``), loaded again when Redis lost them (``NOSCRIPT``).

The scripts of the bus are each atomic on the Redis server; they run on a single Redis (their
keys are not all declared in KEYS, so they are not for Redis Cluster).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import redis.asyncio
import redis.exceptions

__all__ = ["Script", "XADD_MANY"]


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

    async def run(
        self, client: redis.asyncio.Redis, keys: Sequence[Any], args: Sequence[Any]
    ) -> Any:
        """Run the script now, loading it first when Redis does not know it."""
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            await self.load(client)
            return await client.evalsha(self.sha, len(keys), *keys, *args)


#: Add request entries to the stream, many per call (the clients' sender: one round trip and
#: four arguments per request). KEYS: request stream. ARGV: reply list key ('' for
#: notifications: no ``reply_to`` field), then per entry its payload, its deadline (epoch
#: milliseconds, '' for none: no ``deadline_ms`` field), its ``traceparent`` and its
#: ``tracestate`` ('' for none: no such field).
#: Fields of each entry: ``data`` = the payload, ``reply_to`` = the reply list,
#: ``deadline_ms`` = the deadline, ``traceparent``, ``tracestate``. Returns the number of
#: entries added.
XADD_MANY = Script("""
local stream, reply_to = KEYS[1], ARGV[1]
local names = {'deadline_ms', 'traceparent', 'tracestate'}
for i = 2, #ARGV - 3, 4 do
  local fields = {'data', ARGV[i]}
  if reply_to ~= '' then
    fields[#fields + 1] = 'reply_to'
    fields[#fields + 1] = reply_to
  end
  for j = 1, 3 do
    if ARGV[i + j] ~= '' then
      fields[#fields + 1] = names[j]
      fields[#fields + 1] = ARGV[i + j]
    end
  end
  redis.call('XADD', stream, '*', unpack(fields))
end
return (#ARGV - 1) / 4
""")
