"""``POST /rpc`` (alias ``POST /``): JSON-RPC 2.0 over HTTP (design.md, "JSON-RPC over HTTP").

A thin adapter over :class:`server.jsonrpc.JsonRpcCore`, served below ``tornado.web`` (the
routing of ``tornado.routing`` to plain message delegates): the server's router
(:func:`server.http.app.make_router`) sends ``POST /rpc`` and ``POST /`` (:data:`MATCHER`) to
an :class:`RpcEndpoint`, which makes one :class:`RpcDelegate` per request; every other request
goes to the ``tornado.web`` application. Tornado's HTTP/1.1 connection still parses the
request, keeps connections alive (HTTP/1.0 too, on ``Connection: keep-alive``), decodes chunked
bodies and answers ``Expect: 100-continue``; request bodies are not decompressed (a gzip body is
-32700, as on every route). The delegate does the rest by hand:

====================================================  ====================================
what                                                  answer
====================================================  ====================================
a payload with at least one response due              200, the response (one or a batch)
only notifications                                    204, no body
the queue is full (-32003)                            503, ``Retry-After: 1``, the -32003
missing or wrong bearer token (after the body)        401 JSON, ``WWW-Authenticate``
a bad ``X-Timeout-Ms`` (not a number of ms >= 0)      400 JSON (after the body)
a bug of ours                                         500 JSON, logged with the stack
``Idempotency-Key``: a repeat, a reused key, a bad    the stored response with
key, the store unreachable                            ``Idempotent-Replayed: true``, 422,
                                                      400, 503 JSON
                                                      (:mod:`server.http.idempotent`)
====================================================  ====================================

``X-Timeout-Ms`` gives the payload a deadline, counted from the arrival of the request's
headers (see :meth:`server.jsonrpc.JsonRpcCore.handle`). A client that disconnects before its
response is written withdraws its calls (:meth:`executor.pool.Pool.withdraw`): the waiting
ones never run, running ``async def`` ones are cancelled, nothing is written back.

Every response carries ``X-Request-ID`` (the request's, else generated), the headers the
``tornado.web`` handlers send (``Server``, ``Date``, ``Content-Type``, ``Content-Length``) and,
for an allowed origin, the CORS headers; each request gets the access log line of every route.
Auth, request ids, the CORS policy, the access log line and the JSON error body are the
handlers' own (:mod:`server.http.base`, :mod:`server.http.cors`,
:mod:`server.http.access_log`, :func:`server.http.errors.error_body`).

A body over ``max_body_bytes`` never reaches this module: the server answers it 413 JSON on
every route (:mod:`server.http.connections`).

Other HTTP methods on ``/rpc`` and ``/`` reach :class:`RpcHandler` in the application: 405 with
``Allow: POST`` (after auth and the body, as above), and the CORS preflight.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

import tornado
import tornado.routing
import tornado.web
from tornado.http1connection import HTTP1Connection
from tornado.httputil import (
    HTTPHeaders,
    HTTPMessageDelegate,
    HTTPServerRequest,
    RequestStartLine,
    ResponseStartLine,
)

from server import tracing
from server.http.access_log import log_access
from server.http.base import REQUEST_ID_HEADER, BaseHandler, bearer_refusal, request_id_of
from server.http.cors import CorsPolicy, is_preflight
from server.http.errors import RETRY_AFTER_S, RestError, error_body
from server.http.idempotent import IDEMPOTENCY_KEY_HEADER, HttpIdempotency
from server.jsonrpc import JsonRpcCore
from wire.deadline import TIMEOUT_HEADER, deadline_from_timeout_ms, now_ms

__all__ = ["MATCHER", "RpcDelegate", "RpcEndpoint", "RpcHandler"]

logger = logging.getLogger(__name__)

_PATHS = frozenset(("/rpc", "/"))
_SERVER = "TornadoServer/" + tornado.version
_RETRY_AFTER = str(RETRY_AFTER_S)
_STATUS_LINES = {
    status: ResponseStartLine("HTTP/1.1", status, HTTPStatus(status).phrase)
    for status in (200, 204, 400, 401, 422, 500, 503)
}


class _RpcMatcher(tornado.routing.Matcher):
    """Matches ``POST /rpc`` and ``POST /`` (any query string)."""

    def match(self, request: HTTPServerRequest) -> dict[str, Any] | None:
        if request.method == "POST" and request.path in _PATHS:
            return {}
        return None


#: The matcher of the JSON-RPC rule of the server's router.
MATCHER = _RpcMatcher()


class _DateHeader:
    """The ``Date`` header (RFC 9110 §6.6.1) of the current second, formatted once a second."""

    __slots__ = ("second", "text")

    def __init__(self) -> None:
        self.second = -1
        self.text = ""

    def at(self, now_s: float) -> str:
        second = int(now_s)
        if second != self.second:
            self.second, self.text = second, formatdate(second, usegmt=True)
        return self.text


class RpcEndpoint(tornado.routing.Router):
    """The target of the JSON-RPC rule: one :class:`RpcDelegate` per request.

    Args:
        core: the JSON-RPC core that answers payloads.
        auth_token: the bearer token the server requires, or None.
        cors: who may call across origins.
        access_log: write the access log line of each request.
        idempotency: answers the requests with ``Idempotency-Key``; None: the header is ignored.
    """

    def __init__(
        self,
        core: JsonRpcCore,
        *,
        auth_token: str | None,
        cors: CorsPolicy,
        access_log: bool,
        idempotency: HttpIdempotency | None = None,
    ) -> None:
        self.core = core
        self.idempotency = idempotency
        self.auth_token = auth_token
        self.cors = cors
        self.access_log = access_log
        self.date = _DateHeader()

    def find_handler(self, request: HTTPServerRequest, **kwargs: Any) -> RpcDelegate:
        """A new delegate for ``request`` (already matched by :data:`MATCHER`)."""
        return RpcDelegate(self, request)


class RpcDelegate(HTTPMessageDelegate):
    """One ``POST /rpc``: takes the body as it streams in, answers once it is complete.

    Tornado's connection calls :meth:`headers_received`, :meth:`data_received` per chunk,
    then :meth:`finish` (or :meth:`on_connection_close` if the client leaves first); a client
    that leaves after :meth:`finish` and before its response cancels the answering task.
    """

    def __init__(self, endpoint: RpcEndpoint, request: HTTPServerRequest) -> None:
        self.endpoint = endpoint
        self.request = request
        self.request_id = request_id_of(request)
        self.chunks: list[bytes] = []
        self.size = 0
        self.refusal: RestError | None = None
        self.task: asyncio.Task[None] | None = None
        self.deadline_ms: float | None = None
        #: told ``(status, body)`` of the response before it is written (idempotency)
        self.on_response: Callable[[int, bytes | None], None] | None = None

    def headers_received(
        self, start_line: RequestStartLine | ResponseStartLine, headers: HTTPHeaders
    ) -> None:
        """Check the token (the refusal waits for the body)."""
        endpoint = self.endpoint
        if endpoint.auth_token:
            # Refusals wait until the body is read: answering while the client still sends
            # it would reset the connection before the client reads the answer.
            self.refusal = bearer_refusal(endpoint.auth_token, headers.get("Authorization"))
        timeout = headers.get(TIMEOUT_HEADER)
        if timeout is not None:
            try:
                self.deadline_ms = deadline_from_timeout_ms(timeout, now_ms())
            except ValueError as exc:
                logger.warning("POST %s refused: %s", self.request.path, exc)
                self.refusal = self.refusal or RestError(400, str(exc))

    def data_received(self, chunk: bytes) -> None:
        """Keep a chunk of the body (the server keeps it under the limit)."""
        if self.refusal is None:
            self.chunks.append(chunk)

    def finish(self) -> None:
        """The body is complete: answer a refusal at once, else start the call."""
        if self.refusal is not None:
            self._refuse(self.refusal)
            return
        chunks = self.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        idempotency = self.endpoint.idempotency
        if idempotency is not None and IDEMPOTENCY_KEY_HEADER in self.request.headers:
            answer = idempotency.answer(self, body)
        else:
            answer = self._answer(body)
        if tracing.active is not None:
            request = self.request
            answer = tracing.active.http_request(
                "POST", request.path, request.headers, request._start_time, self.request_id, answer
            )
        self.task = asyncio.get_running_loop().create_task(answer)
        connection = self.request.connection
        if isinstance(connection, HTTP1Connection):
            connection.set_close_callback(self._on_client_left)

    def on_connection_close(self) -> None:
        """The client left before the body was complete: nothing to answer."""
        self.chunks = []

    def _on_client_left(self) -> None:
        """The client disconnected before its response: withdraw its calls (cancel the task)."""
        task = self.task
        if task is not None and not task.done():
            logger.info(
                "POST %s: client left before its response (request %s); withdrawing its calls",
                self.request.path,
                self.request_id,
            )
            task.cancel()

    async def _answer(self, body: bytes) -> None:
        """Run the payload through the core and write its response (the module doc's table)."""
        try:
            context = {"request_id": self.request_id, "transport": "http"}
            reply = await self.endpoint.core.handle(body, context, self.deadline_ms)
        except Exception:  # a bug of ours: a JSON 500, logged with the stack
            logger.exception("POST %s failed", self.request.path)
            self._respond(500, error_body(500, "Internal Server Error"))
            return
        if reply.body is None:
            self._respond(204, None, reply.methods)
        elif reply.busy:
            self._respond(503, reply.body, reply.methods, [("Retry-After", _RETRY_AFTER)])
        else:
            self._respond(200, reply.body, reply.methods)

    def _refuse(self, refusal: RestError) -> None:
        self.chunks = []
        status = refusal.status_code
        body = error_body(status, refusal.message, refusal.details)
        self._respond(status, body, (), list(refusal.headers.items()))

    def _respond(
        self,
        status: int,
        body: bytes | None,
        rpc_methods: list[str] | tuple[str, ...] = (),
        extra: list[tuple[str, str]] | None = None,
    ) -> None:
        """Write the whole response: the headers of the module doc, then ``body``."""
        if self.on_response is not None:
            self.on_response(status, body)
        endpoint = self.endpoint
        request = self.request
        now_s = time.time()
        headers = HTTPHeaders()
        headers["Server"] = _SERVER
        if body is not None:
            headers["Content-Type"] = "application/json"
        headers["Date"] = endpoint.date.at(now_s)
        headers[REQUEST_ID_HEADER] = self.request_id
        if endpoint.cors.enabled:
            for name, value in endpoint.cors.response_headers(request.headers.get("Origin")):
                headers[name] = value
        if extra:
            for name, value in extra:
                headers[name] = value
        if body is not None:
            headers["Content-Length"] = str(len(body))
        connection = request.connection
        assert connection is not None
        connection.write_headers(_STATUS_LINES[status], headers, body)
        connection.finish()
        if endpoint.access_log:
            log_access(
                "POST",
                request.path,
                status,
                (now_s - request._start_time) * 1000.0,
                rpc_methods,
                self.request_id,
            )


@tornado.web.stream_request_body
class RpcHandler(BaseHandler):
    """``/rpc`` and ``/`` for every HTTP method but POST: 405 JSON with ``Allow: POST``, after
    auth and the body (401 as for POST); a CORS preflight is answered as on every route.

    Handler kwargs: ``auth_token``.
    """

    cors_methods = "POST"
    #: POST on these paths never reaches this handler: the router sends it to the delegate
    #: (see ``server.http.app.make_router``); /openapi.json lists it for the path all the same.
    routed_methods = ("post",)

    def initialize(self, auth_token: str | None) -> None:
        """Take the route kwargs (see the class doc)."""
        self.auth_token = auth_token
        self._refusal: RestError | None = None

    def prepare(self) -> None:
        # Refusals wait until the body is read (see RpcDelegate.headers_received).
        try:
            super().prepare()
        except RestError as refusal:
            self._refusal = refusal

    def data_received(self, chunk: bytes) -> None:
        """Drop the body (the server keeps it under the limit)."""

    def _wrong_method(self, *args: str, **kwargs: str) -> None:
        if self._refusal is not None:
            raise self._refusal
        raise RestError(405, "use POST for JSON-RPC", headers={"Allow": "POST"})

    get = put = delete = patch = head = post = _wrong_method

    def options(self, *args: str) -> None:
        """A CORS preflight (see :meth:`BaseHandler.options`); any other ``OPTIONS`` is 405."""
        if is_preflight(self.request.method, self.request.headers):
            super().options()
        else:
            self._wrong_method()
