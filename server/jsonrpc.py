"""The transport-free JSON-RPC 2.0 core: request text in, response text (or nothing) out.

Both transports (HTTP, the bus) are thin adapters over :meth:`JsonRpcCore.handle`. It
follows the JSON-RPC 2.0 specification (§4 request object, §4.1 notification, §5 response
object, §5.1 error object, §6 batch) with the strictness of design.md:

* ``"jsonrpc"`` exactly ``"2.0"``; ``method`` a string; ``params`` absent, array or object;
  ``id`` a string, a number (not a boolean) or null. Null is a request; only an absent id
  makes a notification. Anything else is -32600 (with the id when it was a valid one).
* A body that is not JSON is -32700 with id null; ``[]`` is one -32600; a batch over
  ``max_batch`` is one -32600; a batch answers one response per request, in request order,
  and nothing when it held only notifications.
* Names under ``rpc.`` are the server's own (``server_methods``); other names go to the pool.
* When the pool's queue cannot take the calls, every request gets -32003 and
  :attr:`Reply.busy` is set (HTTP answers 503 with Retry-After).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from executor.pool import Call, CallObserver, Pool
from executor.resolve import is_reachable_name
from wire.errors import InvalidRequest, JsonRpcError, MethodNotFound, ParseError, ServerBusy

__all__ = ["JsonRpcCore", "Reply", "ServerMethod"]

logger = logging.getLogger(__name__)

#: A server-side method (``rpc.*``): ``await method(params)`` returns a JSON-encodable result
#: or raises JsonRpcError.
ServerMethod = Callable[[Any], Awaitable[Any]]

_VERSION_HEAD = b'{"jsonrpc":"2.0",'
_NULL_ID = b"null"


class Reply:
    """What :meth:`JsonRpcCore.handle` answers.

    Attributes:
        body: the response text as UTF-8 bytes, or None when nothing is due (notifications).
        busy: True when the pool refused the calls (-32003): HTTP says 503.
        methods: the method names of the valid requests, in order (for access logs).
    """

    __slots__ = ("body", "busy", "methods")

    def __init__(
        self, body: bytes | None, busy: bool = False, methods: list[str] | None = None
    ) -> None:
        self.body = body
        self.busy = busy
        self.methods = methods or []


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (_INFINITY, -_INFINITY):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


_INFINITY = float("inf")
_decoder = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def _decode(payload: bytes | str) -> Any:
    """Parse strict JSON (RFC 8259): no NaN, no Infinity, no number out of float range.

    Raises:
        ValueError: not JSON; UnicodeDecodeError: not UTF-8; RecursionError: nested too deeply.
    """
    if isinstance(payload, (bytes, bytearray)):
        payload = payload.decode("utf-8")
    return _decoder.decode(payload)


def _is_valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool))


def _encode_id(value: Any) -> bytes:
    if type(value) is int:
        return str(value).encode()
    return json.dumps(value).encode() if value is not None else _NULL_ID


def _result_response(id_json: bytes, result_json: bytes) -> bytes:
    return b"".join((_VERSION_HEAD, b'"result":', result_json, b',"id":', id_json, b"}"))


def _error_response(id_json: bytes, error_json: bytes) -> bytes:
    return b"".join((_VERSION_HEAD, b'"error":', error_json, b',"id":', id_json, b"}"))


def _error_json(error: JsonRpcError) -> bytes:
    return json.dumps(error.to_object(), ensure_ascii=False, separators=(",", ":")).encode()


_METHOD_NOT_FOUND = _error_json(MethodNotFound())
_ABSENT = object()


class _Pending:
    """The calls of one payload still running; ``future`` resolves when none is left."""

    __slots__ = ("count", "future")

    def __init__(self, future: asyncio.Future) -> None:
        self.count = 0
        self.future = future


class _Request:
    """One valid request or notification of a payload, and later its response."""

    __slots__ = ("method", "params", "id_json", "response", "pending")

    def __init__(self, method: str, params: Any, id_json: bytes | None) -> None:
        self.method = method
        self.params = params
        self.id_json = id_json  # None for a notification
        self.response: bytes | None = None
        self.pending: _Pending | None = None

    def on_done(self, ok: bool, payload: bytes) -> None:
        """The pool's answer: keep the response (none for a notification)."""
        if self.id_json is not None:
            self.response = (_result_response if ok else _error_response)(self.id_json, payload)
        elif not ok:
            logger.warning(
                "notification %s failed: %s", self.method, payload.decode(errors="replace")
            )
        pending = self.pending
        pending.count -= 1
        if pending.count == 0:
            pending.future.set_result(None)


class JsonRpcCore:
    """Parse, validate, dispatch and answer JSON-RPC payloads.

    Args:
        pool: the process pool that runs the methods.
        timeout_s: time limit of one call, seconds.
        max_batch: largest accepted batch, in requests.
        server_methods: the server's own ``rpc.*`` methods by name.
        observer: told of the calls answered here rather than by the pool (server methods,
            names resolution refuses, -32003 refusals), like ``Pool.observer``; or None.
    """

    def __init__(
        self,
        pool: Pool,
        timeout_s: float,
        max_batch: int,
        server_methods: dict[str, ServerMethod] | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        self.pool = pool
        self.timeout_s = timeout_s
        self.max_batch = max_batch
        self.server_methods = dict(server_methods or {})
        self.observer = observer

    async def handle(self, payload: bytes | str, context: dict[str, Any] | None = None) -> Reply:
        """Answer one JSON-RPC payload (a request, a notification or a batch).

        Args:
            payload: the JSON text, as received.
            context: facts for the workers' log lines, e.g. ``{"request_id": "..."}``.

        Returns:
            A :class:`Reply`: the response text (one object, or an array for a batch) or None.
        """
        try:
            message = _decode(payload)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            error = ParseError(
                data={
                    "message": str(exc)
                    if not isinstance(exc, RecursionError)
                    else "JSON nested too deeply"
                }
            )
            return Reply(_error_response(_NULL_ID, _error_json(error)))
        if isinstance(message, list):
            return await self._handle_batch(message, context)
        entry = self._check(message)
        if isinstance(entry, bytes):
            return Reply(entry)
        busy = await self._run([entry], context)
        return Reply(
            entry.response if entry.response or not busy else self._busy_response(),
            busy,
            [entry.method],
        )

    async def _handle_batch(self, messages: list[Any], context: dict[str, Any] | None) -> Reply:
        if not messages:
            error = InvalidRequest(data={"message": "an empty batch is not a valid request"})
            return Reply(_error_response(_NULL_ID, _error_json(error)))
        if len(messages) > self.max_batch:
            error = InvalidRequest(
                data={
                    "message": "a batch of %d requests is over the limit of %d"
                    % (len(messages), self.max_batch)
                }
            )
            return Reply(_error_response(_NULL_ID, _error_json(error)))
        entries = [self._check(message) for message in messages]
        requests = [entry for entry in entries if not isinstance(entry, bytes)]
        busy = await self._run(requests, context) if requests else False
        responses = [entry if isinstance(entry, bytes) else entry.response for entry in entries]
        body = [response for response in responses if response is not None]
        if not body:
            return Reply(
                self._busy_response() if busy else None, busy, [r.method for r in requests]
            )
        return Reply(b"[" + b",".join(body) + b"]", busy, [request.method for request in requests])

    def _check(self, message: Any) -> _Request | bytes:
        """Validate one request object (§4); return it, or the -32600 response as bytes."""
        if type(message) is dict and message.get("jsonrpc") == "2.0":  # the common case first
            method = message.get("method")
            params = message.get("params", _ABSENT)
            if type(method) is str and (
                params is _ABSENT or type(params) is list or type(params) is dict
            ):
                if params is _ABSENT:
                    params = None
                if "id" not in message:
                    return _Request(method, params, None)
                request_id = message["id"]
                kind = type(request_id)
                if kind is int or kind is str or kind is float or request_id is None:
                    return _Request(method, params, _encode_id(request_id))
        return self._invalid(message)

    @staticmethod
    def _invalid(message: Any) -> bytes:
        """The -32600 response for a message that is not a valid request object."""
        if not isinstance(message, dict):
            problem = "a request must be a JSON object"
            id_json = _NULL_ID
        else:
            request_id = message.get("id")
            id_ok = _is_valid_id(request_id)
            id_json = _encode_id(request_id) if "id" in message and id_ok else _NULL_ID
            if not id_ok:
                problem = "id must be a string, a number or null"
            elif message.get("jsonrpc") != "2.0":
                problem = 'jsonrpc must be exactly "2.0"'
            elif not isinstance(message.get("method"), str):
                problem = "method must be a string"
            else:
                problem = "params must be an array or an object"
        return _error_response(id_json, _error_json(InvalidRequest(data={"message": problem})))

    async def _run(self, requests: list[_Request], context: dict[str, Any] | None) -> bool:
        """Run the requests; fill in each one's response. Returns True when the pool was busy."""
        calls: list[Call] = []
        server_side: list[_Request] = []
        pending = _Pending(asyncio.get_running_loop().create_future())
        for request in requests:
            if request.method in self.server_methods:
                server_side.append(request)
            elif not is_reachable_name(request.method):
                if request.id_json is not None:
                    request.response = _error_response(request.id_json, _METHOD_NOT_FOUND)
                if self.observer is not None:
                    self.observer(request.method, False, _METHOD_NOT_FOUND, 0.0)
            else:
                request.pending = pending
                calls.append(
                    Call(request.method, request.params, request.on_done, self.timeout_s, context)
                )
        if calls:
            pending.count = len(calls)
            if not self.pool.submit(calls):
                busy = self._busy_error()
                for request in requests:
                    request.response = (
                        None if request.id_json is None else _error_response(request.id_json, busy)
                    )
                if self.observer is not None:
                    for call in calls:
                        self.observer(call.method, False, busy, 0.0)
                return True
        if server_side:
            await asyncio.gather(*(self._run_server_method(request) for request in server_side))
        if calls:
            await pending.future
        return False

    def _busy_error(self) -> bytes:
        return _error_json(ServerBusy(data={"queue_maxsize": self.pool.queue_maxsize}))

    def _busy_response(self) -> bytes:
        """The -32003 response with id null, for a refused payload of notifications only."""
        return _error_response(_NULL_ID, self._busy_error())

    async def _run_server_method(self, request: _Request) -> None:
        method = self.server_methods[request.method]
        started = time.monotonic()
        try:
            result = await method(request.params)
            response = json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode()
            ok = True
        except JsonRpcError as error:
            response, ok = _error_json(error), False
        except Exception as exc:  # a bug of ours: answer -32603 and log it with its stack
            logger.exception("server method %s failed", request.method)
            response, ok = (
                _error_json(JsonRpcError(-32603, "Internal error", {"type": type(exc).__name__})),
                False,
            )
        if self.observer is not None:
            self.observer(request.method, ok, response, time.monotonic() - started)
        if request.id_json is not None:
            request.response = (_result_response if ok else _error_response)(
                request.id_json, response
            )
