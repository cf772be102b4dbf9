"""JSON-RPC 2.0 messages as the bus clients send and receive them (no IO here).

Requests get integer ids from a per-client counter; a client's reply list is its own, so the
ids only need to be unique within one client instance. A reply popped from the list is one
response object, or an array of them for a batch (JSON-RPC 2.0 §5, §6).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from busclient._errors import RpcError
from wire.codec import decode_strict, encode_compact
from wire.deadline import FIELD_DEADLINE_MS, now_ms
from wire.keys import FIELD_DATA, FIELD_REPLY_TO, FIELD_TRACEPARENT, FIELD_TRACESTATE

if TYPE_CHECKING:
    from redis.typing import EncodableT, FieldT

    from busclient._trace_context import TraceContext

logger = logging.getLogger(__name__)

__all__ = [
    "batch_outcomes",
    "batch_payload",
    "decode_reply",
    "deadline_after",
    "deliver",
    "entry_fields",
    "outcome",
    "request",
    "request_payload",
    "response_ids",
    "result",
]


def request(method: str, params: Any, request_id: int | None) -> dict[str, Any]:
    """A request object (or a notification when ``request_id`` is None).

    Raises:
        TypeError: ``params`` is not None, a list, a tuple or a dict (JSON-RPC 2.0 §4.2).
    """
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, not {type(method).__name__}")
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        if isinstance(params, tuple):
            params = list(params)
        if not isinstance(params, (list, dict)):
            raise TypeError(
                "params must be a list or a dict (by-position or by-name), "
                f"not {type(params).__name__}"
            )
        message["params"] = params
    if request_id is not None:
        message["id"] = request_id
    return message


def request_payload(method: str, params: Any, request_id: int | None) -> bytes:
    """Encode a request (a notification when ``request_id`` is None) as compact JSON bytes.

    Example: ``request_payload("add", [1, 2], 7)`` ->
    ``b'{"jsonrpc":"2.0","method":"add","params":[1,2],"id":7}'``.

    Raises:
        TypeError: ``params`` is not None, a list, a tuple or a dict, or holds a value JSON
            cannot encode.
        ValueError: ``params`` holds NaN or Infinity (not JSON, RFC 8259).
    """
    return encode_compact(request(method, params, request_id))


def response_ids(reply: Any) -> Iterable[Any]:
    """The ids a decoded reply answers: one for an object, each member's for an array."""
    if isinstance(reply, dict):
        return (reply.get("id"),)
    if isinstance(reply, list):
        return tuple(member.get("id") for member in reply if isinstance(member, dict))
    return ()


def outcome(response: Any) -> Any:
    """The result of one response object, or an :class:`RpcError` instance (not raised)."""
    if isinstance(response, dict):
        if "error" in response:
            return RpcError.from_object(response["error"])
        if "result" in response:
            return response["result"]
    return RpcError(-32603, "malformed response", {"response": response})


def result(response: Any) -> Any:
    """The result of one response object.

    Raises:
        RpcError: the response carries an error object (or is malformed: -32603).
    """
    value = outcome(response)
    if isinstance(value, RpcError):
        raise value
    return value


def deliver(waiters: Mapping[Any, Any], raw: bytes) -> bool:
    """Hand a popped reply to the future waiting for one of its ids.

    Args:
        waiters: id -> a future (asyncio or concurrent.futures; a batch registers each of its
            ids with the same future).
        raw: the popped reply text.

    Returns:
        True when a waiter took it; False for a late, foreign or undecodable reply (dropped).
    """
    reply, ids = decode_reply(raw)
    for request_id in ids:
        future = waiters.get(request_id)
        if future is not None:
            if not future.done():
                future.set_result(reply)
            return True
    logger.debug("dropped a reply nobody waits for (late or foreign): %.200r", raw)
    return False


def decode_reply(raw: bytes) -> tuple[Any, tuple[Any, ...]]:
    """Decode one popped reply: ``(reply, the ids it answers)``; undecodable -> ``(None, ())``."""
    try:
        reply = decode_strict(raw)
    except (ValueError, RecursionError):
        return None, ()
    return reply, tuple(response_ids(reply))


def batch_outcomes(request_ids: list[int], reply: Any) -> list[Any]:
    """Order a batch reply like its requests: each a result or an :class:`RpcError` instance.

    A request the reply does not answer gets an RpcError -32603 (the server always answers
    every request of a batch, so this means a malformed reply).
    """
    members = reply if isinstance(reply, list) else [reply]
    by_id = {member.get("id"): member for member in members if isinstance(member, dict)}
    return [
        outcome(by_id[request_id])
        if request_id in by_id
        else RpcError(
            -32603, "the batch reply has no response for this request", {"id": request_id}
        )
        for request_id in request_ids
    ]


def entry_fields(
    payload: bytes,
    reply_key: str | None,
    deadline_ms: int | None = None,
    trace_context: TraceContext | None = None,
) -> dict[FieldT, EncodableT]:
    """The fields of a request entry: ``data``; for requests ``reply_to``; with a deadline
    ``deadline_ms`` (epoch milliseconds; design.md, "Message bus" and "Deadlines"); with a
    trace context ``traceparent`` and, when not empty, ``tracestate``."""
    fields: dict[FieldT, EncodableT] = {FIELD_DATA: payload}
    if reply_key is not None:
        fields[FIELD_REPLY_TO] = reply_key
    if deadline_ms is not None:
        fields[FIELD_DEADLINE_MS] = deadline_ms
    if trace_context is not None:
        traceparent, tracestate = trace_context
        fields[FIELD_TRACEPARENT] = traceparent
        if tracestate:
            fields[FIELD_TRACESTATE] = tracestate
    return fields


def deadline_after(timeout_s: float) -> int:
    """The deadline ``timeout_s`` seconds from now, as whole Unix epoch milliseconds.

    A call sent with it is never started after its caller stopped waiting for the reply.
    """
    return round(now_ms() + timeout_s * 1000.0)


def batch_payload(calls: list[tuple[str, Any]], ids: list[int]) -> bytes:
    """Encode ``[(method, params), ...]`` as a batch, the n-th call with id ``ids[n]``.

    Raises:
        ValueError: an empty batch (the server would answer one -32600 with id null), or
            params holding NaN or Infinity (not JSON).
        TypeError: a call's params is not a list or dict, or holds a value JSON cannot encode.
    """
    if not calls:
        raise ValueError("a batch needs at least one call")
    return encode_compact(
        [
            request(method, params, request_id)
            for (method, params), request_id in zip(calls, ids, strict=False)
        ]
    )
