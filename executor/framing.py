"""The wire format between the server process and its workers: one pipe each way.

Server -> worker, one frame per write, carrying one or more calls::

    uint32 little-endian length | pickle of [(call_id, method, params, context), ...]

``params`` is what the request carried (None, a list or a dict of JSON values); ``context``
is a small dict of facts for the worker's log lines (e.g. the request id) or None.

Worker -> server, one frame per event::

    uint32 length | uint8 kind | int64 call_id | payload (length bytes)

========  =================================================================
kind      payload
========  =================================================================
RESULT    the result, encoded as JSON (UTF-8)
ERROR     the JSON-RPC error object ``{"code", "message", "data"?}`` as JSON
LOG       a pickled dict of ``logging.LogRecord`` attributes (call_id 0)
READY     JSON ``{"pid": int, "errors": [{"module", "type", "message"}], "code": str}``
          (call_id 0; ``code`` is the fingerprint of the methods' source files)
========  =================================================================

Calls sent to one worker are answered in the order they were sent, one at a time.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any, Iterable

__all__ = ["RESULT", "ERROR", "LOG", "READY", "CALLS_HEADER", "EVENT_HEADER",
           "pack_calls", "unpack_calls", "pack_event"]

RESULT, ERROR, LOG, READY = 0, 1, 2, 3

CALLS_HEADER = struct.Struct("<I")
EVENT_HEADER = struct.Struct("<IBq")

CallTuple = tuple[int, str, Any, "dict[str, Any] | None"]


def pack_calls(calls: Iterable[CallTuple]) -> bytes:
    """Frame calls for a worker: ``[(call_id, method, params, context), ...]`` -> bytes."""
    body = pickle.dumps(list(calls), protocol=pickle.HIGHEST_PROTOCOL)
    return CALLS_HEADER.pack(len(body)) + body


def unpack_calls(body: bytes) -> list[CallTuple]:
    """Read the body of a calls frame (without its header) back into call tuples."""
    return pickle.loads(body)


def pack_event(kind: int, call_id: int, payload: bytes) -> bytes:
    """Frame one worker event: a RESULT, ERROR, LOG or READY with its payload bytes."""
    return EVENT_HEADER.pack(len(payload), kind, call_id) + payload
