"""Stream replies of redis-py in exact types, for the clients of the bus (bytes over RESP2).

redis-py types its replies loosely (``bytes | str``, RESP2 lists or RESP3 maps); the bus reads
with ``decode_responses`` off over RESP2, so entry ids and fields are bytes. These functions
turn a reply into the shapes the bus works with, at the boundary::

    XREAD / XREADGROUP   [[b"sbusr:rpc", [(b"1700000000000-0", {b"data": b"..."}), ...]], ...]
    stream_entries(...)  [("1700000000000-0", {b"data": b"..."}), ...]
"""

from __future__ import annotations

from typing import Any

__all__ = ["Fields", "as_text", "stream_entries"]

#: The fields of one stream entry, as read: ``{b"data": b"...", b"reply_to": b"..."}``.
Fields = dict[bytes, bytes]


def as_text(value: bytes | str | int) -> str:
    """An entry id, a key or a name as text: ``b"1700000000000-0"`` -> ``"1700000000000-0"``.

    Args:
        value: bytes (decoded as UTF-8), text, or an integer.

    Raises:
        UnicodeDecodeError: bytes that are not UTF-8.
    """
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def stream_entries(response: Any) -> list[tuple[str, Fields]]:
    """The entries of an ``XREAD`` or ``XREADGROUP`` reply, over all its streams, in order.

    Args:
        response: the reply as redis-py returns it over RESP2 (None or ``[]`` when the block
            timed out): ``[[stream, [(entry id, fields), ...]], ...]``.

    Returns:
        ``[(entry id as text, fields), ...]``; an entry deleted while pending (fields nil)
        comes with empty fields.
    """
    return [
        (as_text(entry_id), fields or {})
        for _, entries in response or ()
        for entry_id, fields in entries
    ]
