"""JSON-RPC 2.0 error objects as exceptions (JSON-RPC 2.0 §5.1; codes of design.md).

A method may raise :class:`JsonRpcError` (or a subclass) to answer with its own code; the
server raises the subclasses itself. Each class carries its code as ``code``::

    JsonRpcError                 any code a method chooses
    ├── ParseError        -32700 the body is not JSON
    ├── InvalidRequest    -32600 not a valid Request object
    ├── MethodNotFound    -32601 no such method, or resolution refuses the name
    ├── InvalidParams     -32602 params do not bind, or fail the method's JSON Schema
    ├── InternalError     -32603 e.g. the result cannot be encoded as JSON
    ├── MethodRaised      -32000 the method raised an ordinary exception
    ├── CallTimeout       -32001 the call ran past its time limit; its worker was replaced
    ├── WorkerDied        -32002 the worker died during the call
    ├── ServerBusy        -32003 the waiting queue is full
    └── DeadlinePassed    -32004 the caller's deadline passed before the call started
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wire.codec import encode_compact

__all__ = [
    "JsonRpcError",
    "ParseError",
    "InvalidRequest",
    "MethodNotFound",
    "InvalidParams",
    "InternalError",
    "MethodRaised",
    "CallTimeout",
    "WorkerDied",
    "ServerBusy",
    "DeadlinePassed",
]


class JsonRpcError(Exception):
    """An error object of a JSON-RPC response: ``{"code", "message", "data"?}``.

    Args:
        code: the error code, an integer. Subclasses fix it; then it may be left out.
        message: a short description for the caller.
        data: optional extra facts, a JSON-encodable value (sbusr itself always uses an object).

    Raise it from a method to answer with that code, e.g.
    ``raise JsonRpcError(4001, "no such customer", {"customer": 42})``.
    """

    code: int = -32603
    default_message: str = "Internal error"

    def __init__(
        self, code: int | None = None, message: str | None = None, data: Any = None
    ) -> None:
        if isinstance(code, str) and message is None:  # JsonRpcError("message") for subclasses
            code, message = None, code
        if code is not None:
            self.code = int(code)
        self.message = message if message is not None else self.default_message
        self.data = data
        super().__init__(self.code, self.message)

    def to_object(self) -> dict[str, Any]:
        """Return the error object as a dict: ``{"code": int, "message": str, "data"?: ...}``."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error

    def to_json(self, default: Callable[[Any], Any] | None = None) -> bytes:
        """Return the error object as compact JSON bytes (the one encoder of error objects).

        Args:
            default: converter for values of ``data`` that ``json`` cannot encode (see
                :func:`wire.codec.encode_compact`), e.g. the worker's result encoder.

        Returns:
            UTF-8 JSON bytes. When ``data`` cannot be encoded, the error object of an
            :class:`InternalError` saying so (``data`` names the failure), never an exception.
        """
        try:
            return encode_compact(self.to_object(), default)
        except (TypeError, ValueError, RecursionError) as exc:
            fallback = InternalError(
                message="error data cannot be encoded as JSON",
                data={"type": type(exc).__name__, "message": str(exc)[:200]},
            )
            return encode_compact(fallback.to_object())

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ParseError(JsonRpcError):
    """Invalid JSON was received: the body is not JSON text (-32700)."""

    code = -32700
    default_message = "Parse error"


class InvalidRequest(JsonRpcError):
    """The JSON sent is not a valid Request object, or the batch is empty or too large (-32600)."""

    code = -32600
    default_message = "Invalid Request"


class MethodNotFound(JsonRpcError):
    """No reachable method of that name (-32601): absent, or refused by resolution."""

    code = -32601
    default_message = "Method not found"


class InvalidParams(JsonRpcError):
    """The params do not bind to the method's signature or fail its JSON Schema (-32602)."""

    code = -32602
    default_message = "Invalid params"


class InternalError(JsonRpcError):
    """The server could not complete the call, e.g. the result is not JSON-encodable (-32603)."""

    code = -32603
    default_message = "Internal error"


class MethodRaised(JsonRpcError):
    """The method raised an exception; data is ``{"type", "message"}`` (-32000)."""

    code = -32000
    default_message = "Server error"


class CallTimeout(JsonRpcError):
    """The call ran past its time limit; its worker was killed and replaced (-32001)."""

    code = -32001
    default_message = "Call timed out"


class WorkerDied(JsonRpcError):
    """The worker process died during the call; data tells the exit code or signal (-32002)."""

    code = -32002
    default_message = "Worker died during the call"


class ServerBusy(JsonRpcError):
    """The waiting queue is full; try again later (-32003, HTTP 503 with Retry-After)."""

    code = -32003
    default_message = "Server busy"


class DeadlinePassed(JsonRpcError):
    """The caller's deadline passed before the call started: it was not run, so it is safe
    to retry (-32004); data: ``{"missed_by_ms": int}``, how late the call would have started."""

    code = -32004
    default_message = "Deadline passed before the call started"
