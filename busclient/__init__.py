"""Python side of the sbusr message bus (Redis Streams): callers and peers.

::

    from busclient import BusClient
    with BusClient("redis://127.0.0.1:6379/0") as bus:
        bus.call("add", [1, 2], timeout_s=5)                 # -> 3

* :class:`BusClient` / :class:`AsyncBusClient` -- JSON-RPC calls, notifications and batches
  over the request stream; replies correlated by id on one reply list per client.
* :class:`BusPeer` -- a program that joins the bus: heartbeats, receives ``flow.start``.
* :class:`BusKeys` -- every key name, built from the prefix (shared with the server).
* Exceptions: :class:`BusError` > :class:`BusTimeout`, :class:`BusConnectionError`,
  :class:`RpcError` (also a ``JsonRpcError``: code, message, data).

The wire protocol, for peers in any language: docs/protocol.md, "Message bus".
"""

from busclient._async import AsyncBusClient
from busclient._errors import BusConnectionError, BusError, BusTimeout, RpcError
from busclient._peer import BusPeer, FlowStart
from busclient._sync import BusClient
from wire.keys import BusKeys

__all__ = [
    "AsyncBusClient",
    "BusClient",
    "BusConnectionError",
    "BusError",
    "BusKeys",
    "BusPeer",
    "BusTimeout",
    "FlowStart",
    "RpcError",
]
