"""Exceptions of the bus client library.

::

    BusError                       root of everything this package raises
    ├── BusTimeout                 no reply (or ack) within the time limit; also a TimeoutError
    ├── BusConnectionError         Redis could not be reached (mapped from redis-py, ``from exc``)
    └── RpcError                   the server answered with a JSON-RPC error object; also an
        │                          :class:`wire.errors.JsonRpcError` (code, message, data)
        └── RpcTimeout             the answer says the call's deadline passed (-32004, or
                                   -32001 with ``data.reason == "deadline"``); also a BusTimeout
"""

from __future__ import annotations

from typing import Any

from wire.errors import CallTimeout, DeadlinePassed, JsonRpcError

__all__ = ["BusError", "BusTimeout", "BusConnectionError", "RpcError", "RpcTimeout"]


class BusError(Exception):
    """Root of the exceptions of :mod:`busclient`."""


class BusTimeout(BusError, TimeoutError):
    """No reply arrived within the call's ``timeout_s``, or the server answered that the
    call's deadline passed (then it is an :class:`RpcTimeout`).

    Without a deadline sent, a request that got no reply may still run later (it stays in the
    stream until a server answers it); a late reply is dropped by the client.
    """


class BusConnectionError(BusError, ConnectionError):
    """Redis could not be reached (connection refused, reset or timed out)."""


class RpcError(JsonRpcError, BusError):
    """The server answered with a JSON-RPC error object (JSON-RPC 2.0 §5.1).

    Attributes:
        code: the error code, e.g. -32601.
        message: the error message.
        data: ``error.data`` as sent (a JSON value) or None.
    """

    @classmethod
    def from_object(cls, error: Any) -> RpcError:
        """Build from a response's ``error`` member; a malformed one becomes -32603."""
        if not isinstance(error, dict) or not isinstance(error.get("code"), int):
            return cls(-32603, "malformed error object in the response", {"error": error})
        code, data = error["code"], error.get("data")
        kind = RpcTimeout if _says_deadline_passed(code, data) else cls
        return kind(code, str(error.get("message", "")), data)


class RpcTimeout(RpcError, BusTimeout):
    """The server answered that the call's deadline (its ``timeout_s``) passed.

    Either the call was not started in time (-32004: it did not run, safe to retry) or it ran
    and was cut at the deadline (-32001 with ``data.reason == "deadline"``). The server's answer
    and the client's own time-out race each other at the same instant, so this is both an
    :class:`RpcError` (code, message, data) and a :class:`BusTimeout`: ``except BusTimeout``
    catches a time-out whichever side noticed it first.
    """


def _says_deadline_passed(code: int, data: Any) -> bool:
    """True for the error codes that report a passed deadline (docs/protocol.md, "Deadlines")."""
    if code == DeadlinePassed.code:
        return True
    return code == CallTimeout.code and isinstance(data, dict) and data.get("reason") == "deadline"
