"""What a bus entry must satisfy before it runs: its ``reply_to`` key, its size.

The bus is as open as the Redis it runs on: anyone who can ``XADD`` to the request stream can
call every method. Two checks keep an entry from reaching beyond that:

* ``reply_to`` must match ``SBUSR_BUS_REPLY_TO_PATTERN`` when it is set (a Redis glob, e.g.
  ``<prefix>:reply:*``, where :class:`busclient.BusClient` keeps its reply lists): an entry
  naming another key is acked and not run. Unset, any name passes here, and the reply script
  (:data:`server.bus.scripts.REPLY`) still refuses a key that is no reply list.
* ``data`` must be at most ``SBUSR_MAX_BODY_BYTES`` long, like an HTTP body: a longer entry is
  answered -32600 without being parsed, and acked.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from server.jsonrpc import error_reply
from wire.errors import InvalidRequest

__all__ = ["glob_matcher", "oversize_response"]


def _glob_regex(pattern: bytes) -> bytes:
    """Translate a Redis glob (``*``, ``?``, ``[a-z]``, ``[^a]``, ``\\`` escapes) to a regex."""
    parts: list[bytes] = []
    index, end = 0, len(pattern)
    while index < end:
        char = pattern[index : index + 1]
        index += 1
        if char == b"\\" and index < end:
            parts.append(re.escape(pattern[index : index + 1]))
            index += 1
        elif char == b"*":
            parts.append(b".*")
        elif char == b"?":
            parts.append(b".")
        elif char == b"[" and pattern.find(b"]", index + 1) > 0:
            close = pattern.find(b"]", index + 1)
            body = pattern[index:close]
            index = close + 1
            negate = body.startswith(b"^")
            if negate:
                body = body[1:]
            members = b"".join(
                piece if piece == b"-" else re.escape(piece)
                for piece in (body[at : at + 1] for at in range(len(body)))
            )
            parts.append(b"[" + (b"^" if negate else b"") + members + b"]")
        else:
            parts.append(re.escape(char))
    return b"".join(parts)


def glob_matcher(pattern: str) -> Callable[[bytes], bool]:
    """A test of keys against the Redis glob ``pattern``, as ``KEYS``/``SCAN MATCH`` read it.

    Example: ``glob_matcher("sbusr:reply:*")(b"sbusr:reply:5f0c")`` -> True; ``(b"celery")``
    -> False. The whole key must match.
    """
    compiled = re.compile(_glob_regex(pattern.encode()), re.DOTALL)

    def matches(key: bytes) -> bool:
        return compiled.fullmatch(key) is not None

    return matches


def oversize_response(size_bytes: int, limit_bytes: int) -> bytes:
    """The JSON-RPC response to an entry whose ``data`` is over the body limit.

    Returns:
        ``{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request", "data":
        {"message", "size_bytes", "max_body_bytes"}}, "id": null}`` as bytes (the request
        is never parsed, so its id is unknown).
    """
    error = InvalidRequest(
        data={
            "message": f"the request is {size_bytes} bytes, over the limit of {limit_bytes}",
            "size_bytes": size_bytes,
            "max_body_bytes": limit_bytes,
        }
    )
    body = error_reply(error).body
    assert body is not None  # an error reply always has its response
    return body
