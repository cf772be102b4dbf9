"""The wire format between the server process and its workers: one pipe each way.

Server -> worker, one frame per write::

    uint32 little-endian length | uint8 kind | body (length bytes)

========  =================================================================
kind      body
========  =================================================================
CALLS     pickle of ``[(call_id, method, params, context), ...]``: calls to start now
CANCEL    int64 little-endian call ids: calls past their time limit, to stop
WITHDRAW  int64 little-endian call ids: calls whose caller left; async ones are cancelled,
          calls in threads run on (no BLOCKED answer)
========  =================================================================

``params`` is what the request carried (None, a list or a dict of JSON values); ``context``
is a small dict of facts for the worker's log lines (e.g. the request id) or None.

Worker -> server, one frame per event::

    uint32 length | uint8 kind | int64 call_id | payload (length bytes)

========  =================================================================
kind      payload
========  =================================================================
RESULT    the result, encoded as JSON (UTF-8)
ERROR     the JSON-RPC error object ``{"code", "message", "data"?}`` as JSON
LOG       JSON object of ``logging.LogRecord`` attributes (call_id 0)
READY     JSON ``{"pid": int, "errors": [{"module", "type", "message"}], "code": str}``
          (call_id 0; ``code`` is the fingerprint of the methods' source files)
BLOCKED   empty: the call cannot be cancelled (it runs in a thread); sent for a CANCEL
========  =================================================================

A worker runs the calls it receives at once, side by side, and answers each with exactly one
RESULT or ERROR frame, in the order they finish (a cancelled call too: its frame tells the
server that the call is gone).

Every worker -> server payload is JSON, never pickle: a method can write any bytes to its
worker's pipe, and they must not be able to run code in the server. A frame the server cannot
read (an unknown kind, a LOG or READY payload that is not a JSON object) is logged and its
worker killed as broken. The server -> worker CALLS body is the server's own pickle.
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Iterable
from typing import Any

__all__ = [
    "BLOCKED",
    "CALLS",
    "CALLS_HEADER",
    "CANCEL",
    "WITHDRAW",
    "ERROR",
    "EVENT_HEADER",
    "EVENT_KINDS",
    "LOG",
    "READY",
    "RESULT",
    "CallTuple",
    "pack_calls",
    "pack_cancel",
    "pack_event",
    "pack_withdraw",
    "unpack_calls",
    "unpack_cancel",
]

# worker -> server
RESULT, ERROR, LOG, READY, BLOCKED = 0, 1, 2, 3, 4
EVENT_KINDS = frozenset((RESULT, ERROR, LOG, READY, BLOCKED))
# server -> worker
CALLS, CANCEL, WITHDRAW = 0, 1, 2

CALLS_HEADER = struct.Struct("<IB")
EVENT_HEADER = struct.Struct("<IBq")
_CALL_ID = struct.Struct("<q")

#: ``(call_id, method, params, context)``
CallTuple = tuple[int, str, Any, "dict[str, Any] | None"]


def pack_calls(calls: Iterable[CallTuple]) -> bytes:
    """Frame calls for a worker: ``[(call_id, method, params, context), ...]`` -> bytes."""
    body = pickle.dumps(list(calls), protocol=pickle.HIGHEST_PROTOCOL)
    return CALLS_HEADER.pack(len(body), CALLS) + body


def unpack_calls(body: bytes | bytearray) -> list[CallTuple]:
    """Read the body of a CALLS frame (without its header) back into call tuples."""
    calls: list[CallTuple] = pickle.loads(body)
    return calls


def pack_cancel(call_ids: Iterable[int]) -> bytes:
    """Frame a CANCEL of the calls ``call_ids`` for a worker."""
    body = b"".join(_CALL_ID.pack(call_id) for call_id in call_ids)
    return CALLS_HEADER.pack(len(body), CANCEL) + body


def pack_withdraw(call_ids: Iterable[int]) -> bytes:
    """Frame a WITHDRAW of the calls ``call_ids`` (their caller left) for a worker."""
    body = b"".join(_CALL_ID.pack(call_id) for call_id in call_ids)
    return CALLS_HEADER.pack(len(body), WITHDRAW) + body


def unpack_cancel(body: bytes | bytearray) -> list[int]:
    """Read the body of a CANCEL or WITHDRAW frame back into call ids."""
    return [call_id for (call_id,) in _CALL_ID.iter_unpack(body)]


def pack_event(kind: int, call_id: int, payload: bytes) -> bytes:
    """Frame one worker event: RESULT, ERROR, LOG, READY or BLOCKED with its payload bytes."""
    return EVENT_HEADER.pack(len(payload), kind, call_id) + payload
