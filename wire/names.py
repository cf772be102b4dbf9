"""Method names and instance names.

* ``rpc.`` is reserved for the server's own methods (JSON-RPC 2.0 §4): callers never reach
  a user method through it, and only the server submits such names to the workers.
* :func:`is_reachable_name` is the syntax half of method resolution (design.md, "Method
  resolution"); ``executor.resolve`` does the import half.
* :func:`instance_id` names one running server process (bus consumer, job scheduler).
"""

from __future__ import annotations

import functools
import os
import secrets
import socket

__all__ = [
    "REMEMBERED_NAME_LENGTH",
    "RESERVED_PREFIX",
    "instance_id",
    "is_reachable_name",
    "is_reserved",
]

#: Prefix of the server's own methods (``rpc.discover``).
RESERVED_PREFIX = "rpc."

#: Names up to this length are remembered by :func:`is_reachable_name` (callers repeat a few
#: names); longer ones are checked each time, so the memory stays bounded whatever callers send.
REMEMBERED_NAME_LENGTH = 128


def is_reserved(method: str) -> bool:
    """Tell whether ``method`` is one of the server's own names (starts with ``rpc.``)."""
    return method.startswith(RESERVED_PREFIX)


def is_reachable_name(method: str) -> bool:
    """Tell whether ``method`` is a name resolution may accept, before any import.

    Args:
        method: the JSON-RPC method name, e.g. ``"bar.boo.loo.Loo.dec"``.

    Returns:
        False for the ``rpc.`` prefix, empty segments, segments that are not Python
        identifiers and segments starting with ``_``; True otherwise.
    """
    if len(method) <= REMEMBERED_NAME_LENGTH:
        return _check_remembered(method)
    return _check(method)


def _check(method: str) -> bool:
    if is_reserved(method):
        return False
    return all(
        segment.isidentifier() and not segment.startswith("_") for segment in method.split(".")
    )


#: At most 4,096 names of at most 128 characters: about 1 MiB.
_check_remembered = functools.lru_cache(maxsize=4096)(_check)


def instance_id() -> str:
    """Name this process among the servers sharing a Redis: ``"<host>:<pid>:<6 hex digits>"``.

    The random part tells apart two processes that got the same pid (a restart in a
    container), e.g. ``"ivr-3:4121:9f0c2a"``.
    """
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
