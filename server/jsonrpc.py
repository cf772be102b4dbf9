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
* Names under ``rpc.`` are the server's own (``server_methods``); other names that may be
  reachable go to the call sink (the process pool); the rest are -32601 at once.
* When the sink cannot take the calls, every request gets -32003 and :attr:`Reply.busy` is
  set (HTTP answers 503 with Retry-After).
* A caller's deadline (``deadline_ms``, one for the whole payload) that has passed on arrival
  answers every request -32004 and runs nothing; otherwise each call carries it to the sink
  (design.md, "Deadlines and idempotency").
* Cancelling :meth:`JsonRpcCore.handle` (the caller left) withdraws its calls from the sink.

The core needs of the pool only a :class:`CallSink` (``submit`` and ``queue_maxsize``), so
it can be tested without worker processes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from executor.pool import Call, CallObserver
from server import limit_counters
from wire.codec import decode_strict, encode_compact
from wire.deadline import now_ms
from wire.errors import (
    DeadlinePassed,
    InternalError,
    InvalidRequest,
    JsonRpcError,
    MethodNotFound,
    ParseError,
    ServerBusy,
)
from wire.names import is_reachable_name, is_reserved

__all__ = ["CallSink", "JsonRpcCore", "Reply", "ServerMethod", "error_reply"]

logger = logging.getLogger(__name__)

#: A server-side method (``rpc.*``): ``await method(params)`` returns a JSON-encodable result
#: or raises JsonRpcError.
ServerMethod = Callable[[Any], Awaitable[Any]]


class CallSink(Protocol):
    """Where the core sends the calls of user methods: the process pool.

    ``submit`` takes all the calls of a payload or none; each accepted call's ``on_done`` is
    called exactly once later, with ``(True, result JSON)`` or ``(False, error object JSON)``.
    """

    @property
    def queue_maxsize(self) -> int:
        """Calls that may wait; reported in the -32003 error's data."""
        ...

    def submit(self, calls: list[Call]) -> bool:
        """Queue ``calls``, all or none; False when there is no room (the core answers -32003)."""
        ...

    def withdraw(self, calls: list[Call]) -> int:
        """The caller left: never start (nor answer) the calls still waiting; drop the answers
        of running ones. Returns how many were withdrawn before they started."""
        ...


_VERSION_HEAD = b'{"jsonrpc":"2.0",'
_NULL_ID = b"null"
#: a code point of a lone surrogate: JSON's ``"\udc80"`` escape decodes to one, UTF-8 has none
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class Reply:
    """What :meth:`JsonRpcCore.handle` answers.

    Attributes:
        body: the response text as UTF-8 bytes, or None when nothing is due (notifications).
        busy: True when the sink refused the calls (-32003): HTTP says 503.
        methods: the method names of the valid requests, in order (for access logs).
    """

    __slots__ = ("body", "busy", "methods")

    def __init__(
        self, body: bytes | None, busy: bool = False, methods: list[str] | None = None
    ) -> None:
        self.body = body
        self.busy = busy
        self.methods = methods or []


def _is_valid_id(value: Any) -> bool:
    if isinstance(value, str):
        return _is_unicode(value)
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _is_unicode(text: str) -> bool:
    """Tell whether ``text`` can be answered in UTF-8 (it holds no lone surrogate)."""
    return text.isascii() or _LONE_SURROGATE.search(text) is None


def _encode_id(value: Any) -> bytes:
    if type(value) is int:
        return str(value).encode()
    return encode_compact(value) if value is not None else _NULL_ID


def _result_response(id_json: bytes, result_json: bytes) -> bytes:
    return b"".join((_VERSION_HEAD, b'"result":', result_json, b',"id":', id_json, b"}"))


def _error_response(id_json: bytes, error_json: bytes) -> bytes:
    return b"".join((_VERSION_HEAD, b'"error":', error_json, b',"id":', id_json, b"}"))


_METHOD_NOT_FOUND = MethodNotFound().to_json()


def error_reply(error: JsonRpcError) -> Reply:
    """The reply of a payload refused whole before it is read: one error response, id null.

    Example: a bus entry whose ``deadline_ms`` is not a number gets
    ``error_reply(InvalidRequest(data={"message": ...}))``.
    """
    return Reply(_error_response(_NULL_ID, error.to_json()))


_ABSENT = object()


class _Pending:
    """The calls of one payload still running; ``future`` resolves when none is left."""

    __slots__ = ("count", "future")

    def __init__(self, future: asyncio.Future[None]) -> None:
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
        """The sink's answer: keep the response (none for a notification)."""
        if self.id_json is not None:
            self.response = (_result_response if ok else _error_response)(self.id_json, payload)
        elif not ok:
            logger.warning(
                "notification %s failed: %s", self.method, payload.decode(errors="replace")
            )
        pending = self.pending
        assert pending is not None
        pending.count -= 1
        if pending.count == 0 and not pending.future.done():  # done: cancelled, the caller left
            pending.future.set_result(None)


class JsonRpcCore:
    """Parse, validate, dispatch and answer JSON-RPC payloads.

    Args:
        sink: where calls of user methods go (the process pool), see :class:`CallSink`.
        timeout_s: time limit of one call, seconds.
        max_batch: largest accepted batch, in requests.
        server_methods: the server's own methods by name; every name starts with ``rpc.``.
        observer: told of the calls answered here rather than by the sink (server methods,
            names resolution refuses, -32003 refusals), like ``Pool.observer``; or None.

    Raises:
        ValueError: a name of ``server_methods`` is not under the reserved ``rpc.`` prefix.
    """

    def __init__(
        self,
        sink: CallSink,
        timeout_s: float,
        max_batch: int,
        server_methods: dict[str, ServerMethod] | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        self.sink = sink
        self.timeout_s = timeout_s
        self.max_batch = max_batch
        self.server_methods = dict(server_methods or {})
        for name in self.server_methods:
            if not is_reserved(name):
                raise ValueError(f"server method {name!r} is not under the reserved rpc. prefix")
        self.observer = observer

    async def handle(
        self,
        payload: bytes | str,
        context: dict[str, Any] | None = None,
        deadline_ms: float | None = None,
    ) -> Reply:
        """Answer one JSON-RPC payload (a request, a notification or a batch).

        Args:
            payload: the JSON text, as received.
            context: facts for the workers' log lines and the metrics, e.g.
                ``{"request_id": "...", "transport": "http"}``.
            deadline_ms: the caller's deadline for the whole payload, Unix epoch milliseconds,
                or None. Already passed: every request is answered -32004 (data
                ``{"missed_by_ms"}``) and nothing runs; else see :class:`executor.pool.Call`.

        Returns:
            A :class:`Reply`: the response text (one object, or an array for a batch) or None.

        Cancelling the coroutine withdraws its calls (:meth:`CallSink.withdraw`).
        """
        try:
            message = decode_strict(payload)
        except (ValueError, RecursionError) as exc:
            problem = "JSON nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            error = ParseError(data={"message": problem})
            return Reply(_error_response(_NULL_ID, error.to_json()))
        if isinstance(message, list):
            return await self._handle_batch(message, context, deadline_ms)
        entry = self._check(message)
        if isinstance(entry, bytes):
            return Reply(entry)
        busy = await self._run([entry], context, deadline_ms)
        return Reply(
            entry.response if entry.response or not busy else self._busy_response(),
            busy,
            [entry.method],
        )

    async def _handle_batch(
        self, messages: list[Any], context: dict[str, Any] | None, deadline_ms: float | None
    ) -> Reply:
        if not messages:
            error = InvalidRequest(data={"message": "an empty batch is not a valid request"})
            return Reply(_error_response(_NULL_ID, error.to_json()))
        if len(messages) > self.max_batch:
            error = InvalidRequest(
                data={
                    "message": f"a batch of {len(messages)} requests is over the limit "
                    f"of {self.max_batch}"
                }
            )
            return Reply(_error_response(_NULL_ID, error.to_json()))
        entries = [self._check(message) for message in messages]
        requests = [entry for entry in entries if not isinstance(entry, bytes)]
        busy = await self._run(requests, context, deadline_ms) if requests else False
        responses = [entry if isinstance(entry, bytes) else entry.response for entry in entries]
        body = [response for response in responses if response is not None]
        methods = [request.method for request in requests]
        if not body:
            return Reply(self._busy_response() if busy else None, busy, methods)
        return Reply(b"[" + b",".join(body) + b"]", busy, methods)

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
                if (
                    kind is int
                    or kind is float
                    or request_id is None
                    or (kind is str and _is_unicode(request_id))
                ):
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
            if isinstance(request_id, str) and not id_ok:
                problem = "id must be valid Unicode (it holds a lone surrogate)"
            elif not id_ok:
                problem = "id must be a string, a number or null"
            elif message.get("jsonrpc") != "2.0":
                problem = 'jsonrpc must be exactly "2.0"'
            elif not isinstance(message.get("method"), str):
                problem = "method must be a string"
            else:
                problem = "params must be an array or an object"
        return _error_response(id_json, InvalidRequest(data={"message": problem}).to_json())

    async def _run(
        self, requests: list[_Request], context: dict[str, Any] | None, deadline_ms: float | None
    ) -> bool:
        """Run the requests; fill in each one's response. Returns True when the sink was busy."""
        if deadline_ms is not None:
            missed_by_ms = now_ms() - deadline_ms
            if missed_by_ms >= 0:
                self._answer_missed(requests, missed_by_ms, context)
                return False
        calls: list[Call] = []
        server_side: list[_Request] = []
        pending = _Pending(asyncio.get_running_loop().create_future())
        server_methods = self.server_methods
        for request in requests:
            method = request.method
            if method in server_methods:  # every one is under the reserved prefix
                server_side.append(request)
                continue
            if is_reachable_name(method):  # False under the reserved prefix
                request.pending = pending
                calls.append(
                    Call(
                        method,
                        request.params,
                        request.on_done,
                        self.timeout_s,
                        context,
                        deadline_ms,
                    )
                )
                continue
            if request.id_json is not None:
                request.response = _error_response(request.id_json, _METHOD_NOT_FOUND)
            if self.observer is not None:
                self.observer(method, False, _METHOD_NOT_FOUND, 0.0, context)
        if calls:
            pending.count = len(calls)
            if not self.sink.submit(calls):
                busy = self._busy_error()
                for request in requests:
                    request.response = (
                        None if request.id_json is None else _error_response(request.id_json, busy)
                    )
                if self.observer is not None:
                    for call in calls:
                        self.observer(call.method, False, busy, 0.0, context)
                return True
        if server_side:
            await asyncio.gather(
                *(self._run_server_method(request, context) for request in server_side)
            )
        if calls:
            try:
                await pending.future
            except asyncio.CancelledError:  # the caller left
                limit_counters.counters.count_withdrawn(context, self.sink.withdraw(calls))
                raise
        return False

    def _answer_missed(
        self, requests: list[_Request], missed_by_ms: float, context: dict[str, Any] | None
    ) -> None:
        """Answer every request -32004: its caller's deadline passed before it could start."""
        error = DeadlinePassed(data={"missed_by_ms": round(missed_by_ms)}).to_json()
        for request in requests:
            if request.id_json is not None:
                request.response = _error_response(request.id_json, error)
            if self.observer is not None:
                self.observer(request.method, False, error, 0.0, context)
        logger.info(
            "deadline passed %d ms before arrival; requests not run: %s",
            round(missed_by_ms),
            ", ".join(request.method for request in requests),
        )

    def _busy_error(self) -> bytes:
        return ServerBusy(data={"queue_maxsize": self.sink.queue_maxsize}).to_json()

    def _busy_response(self) -> bytes:
        """The -32003 response with id null, for a refused payload of notifications only."""
        return _error_response(_NULL_ID, self._busy_error())

    async def _run_server_method(self, request: _Request, context: dict[str, Any] | None) -> None:
        method = self.server_methods[request.method]
        started = time.monotonic()
        try:
            response, ok = encode_compact(await method(request.params)), True
        except JsonRpcError as error:
            response, ok = error.to_json(), False
        except Exception as exc:  # a bug of ours: answer -32603 and log it with its stack
            logger.exception("server method %s failed", request.method)
            response, ok = InternalError(data={"type": type(exc).__name__}).to_json(), False
        if self.observer is not None:
            elapsed_s = time.monotonic() - started
            self.observer(request.method, ok, response, elapsed_s, context)
        if request.id_json is not None:
            request.response = (_result_response if ok else _error_response)(
                request.id_json, response
            )
