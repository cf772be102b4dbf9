"""Python side of the sbusr message bus (Redis Streams): callers, peers, and the parts the
server's bus reuses.

::

    from busclient import BusClient
    with BusClient("redis://127.0.0.1:6379/0") as bus:
        bus.call("add", [1, 2], timeout_s=5)                 # -> 3

Depends only on ``wire`` and ``settings``. The modules are private; everything public is
re-exported here (sorted in ``__all__``):

Callers and peers:

* :class:`BusClient` / :class:`AsyncBusClient` -- JSON-RPC calls, notifications and batches
  over the request stream; replies correlated by id on one reply list per client.
* :class:`BusPeer` -- a program that joins the bus: heartbeats, receives :class:`FlowStart`
  commands (``flow.start``) and acks them.
* :class:`BusKeys` -- every key name, built from the prefix (from ``wire.keys``).
* Exceptions: :class:`BusError` > :class:`BusTimeout`, :class:`BusConnectionError`,
  :class:`RpcError` (also a ``JsonRpcError``: code, message, data) > :class:`RpcTimeout`
  (the server said the call's deadline passed; also a ``BusTimeout``).

Building blocks of the bus (used by ``server.bus``; public, so every Redis client of sbusr is
built and read the same way):

* :func:`sync_redis` / :func:`async_redis` -- the one place Redis clients are constructed:
  socket timeout = longest block + a margin, no hidden command retries.
* :data:`CONNECTION_ERRORS` -- the redis-py exceptions that mean "Redis unreachable";
  :data:`UNUSABLE_ERRORS` -- those, or a command Redis refused.
* :class:`Outage` -- capped exponential back-off, one log line when an outage starts and one
  when it ends.
* :class:`AsyncReplyReader` -- pops one reply list (``BLMPOP``, :data:`REPLY_BLOCK_S` per
  block) and hands each element to a callback.
* :class:`Script` -- a Lua script run by SHA (``EVALSHA``), reloaded on ``NOSCRIPT``.
* :class:`Outbox` / :func:`cancel_and_wait` -- a writer task's queue; stopping a task that
  sits in a redis-py command.
* :func:`stream_entries` / :func:`as_text` -- redis-py stream replies as exact types
  (``[(entry id, fields), ...]``; bytes ids as text).

The wire protocol, for peers in any language: docs/protocol.md, "Message bus".
"""

from busclient._async import AsyncBusClient
from busclient._backoff import Outage
from busclient._connection import CONNECTION_ERRORS, UNUSABLE_ERRORS, async_redis, sync_redis
from busclient._errors import BusConnectionError, BusError, BusTimeout, RpcError, RpcTimeout
from busclient._peer import BusPeer, FlowStart
from busclient._reader import REPLY_BLOCK_S, AsyncReplyReader
from busclient._script import Script
from busclient._streams import as_text, stream_entries
from busclient._sync import BusClient
from busclient._tasks import Outbox, cancel_and_wait
from wire.keys import BusKeys

__all__ = [
    "AsyncBusClient",
    "AsyncReplyReader",
    "BusClient",
    "BusConnectionError",
    "BusError",
    "BusKeys",
    "BusPeer",
    "BusTimeout",
    "CONNECTION_ERRORS",
    "FlowStart",
    "Outage",
    "Outbox",
    "REPLY_BLOCK_S",
    "RpcError",
    "RpcTimeout",
    "Script",
    "UNUSABLE_ERRORS",
    "as_text",
    "async_redis",
    "cancel_and_wait",
    "stream_entries",
    "sync_redis",
]
