"""The entry field ``idempotency_key`` on the bus (the rules: :mod:`server.idempotency`).

The key covers the entry's ``data`` (one request or a batch), compared byte for byte. A repeat
entry with the same key and the same ``data`` gets the stored response on its own ``reply_to``
without running; the same key with other ``data``, or a key that is empty, over 255 characters
or not printable ASCII, gets -32600 (one error response per request id of ``data``, id null
when none can be read). A response of calls that were not run (-32003, -32004) is not stored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from server.idempotency import Answer, Idempotency, InvalidKey, KeyReused, all_run, parse_key
from server.jsonrpc import Reply, error_reply
from server.limit_counters import counters
from wire.codec import decode_strict, encode_compact
from wire.errors import InvalidRequest

__all__ = ["answer_once", "invalid_request_reply"]


def invalid_request_reply(data: bytes, message: str, key: str) -> Reply:
    """A -32600 reply to every request of ``data``.

    Args:
        data: the entry's JSON-RPC payload (one request or a batch).
        message: what was wrong with the key.
        key: the key as given (``error.data``: ``{"idempotency_key": key}``).

    Returns:
        A :class:`Reply`: one error response (or a batch of them, one per request with an
        id); id null when ``data`` is not JSON or holds no request with an id.
    """
    refusal = InvalidRequest(message=message, data={"idempotency_key": key})
    try:
        payload = decode_strict(data)
    except (ValueError, RecursionError):
        payload = None
    requests = payload if isinstance(payload, list) else [payload]
    ids: list[Any] = [item["id"] for item in requests if isinstance(item, dict) and "id" in item]
    if not ids:
        return error_reply(refusal)
    error = refusal.to_object()
    responses = [{"jsonrpc": "2.0", "error": error, "id": request_id} for request_id in ids]
    return Reply(encode_compact(responses if isinstance(payload, list) else responses[0]))


async def answer_once(
    idempotency: Idempotency, key_text: bytes, data: bytes, run: Callable[[], Awaitable[Reply]]
) -> Reply:
    """Answer an entry that carries ``idempotency_key``: run it once, or replay, or refuse.

    Args:
        idempotency: the rules over the bus's Redis.
        key_text: the field's value.
        data: the entry's ``data``.
        run: runs ``data`` through the JSON-RPC core (awaited at most once).

    Returns:
        The :class:`Reply` to send: ``run``'s, the stored response, or a -32600. A busy reply
        (the pool refused, -32003) is returned as such and not stored: the entry waits.

    Raises:
        server.idempotency.StoreUnavailable: Redis cannot be used (the entry stays pending).
    """
    text = key_text.decode("utf-8", errors="replace")
    try:
        key = parse_key(text)
    except InvalidKey as exc:
        return invalid_request_reply(data, str(exc), text[:300])
    replies: list[Reply] = []

    async def call() -> Answer:
        reply = await run()
        replies.append(reply)
        body = reply.body or b""
        return Answer(200, body, not reply.busy and all_run(body))

    try:
        outcome = await idempotency.run(key, data, call)
    except KeyReused as exc:
        counters.count_refusal("bus")
        return invalid_request_reply(data, str(exc), key)
    if replies:
        return replies[0]
    counters.count_replay("bus")
    return Reply(outcome.answer.body or None)
