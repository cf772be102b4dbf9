"""``POST /rpc`` (alias ``POST /``): JSON-RPC 2.0 over HTTP (design.md, "JSON-RPC over HTTP").

A thin adapter over :class:`server.jsonrpc.JsonRpcCore`: 200 with the response, 204 when only
notifications were sent, 503 with ``Retry-After`` when the queue is full, 413 when the body is
over ``max_body_bytes`` (the body streams in and is dropped past the limit, never kept whole),
401/405 as for every route.
"""

from __future__ import annotations

import tornado.web
from tornado.http1connection import HTTP1Connection

from server.http.base import BaseHandler
from server.http.errors import RETRY_AFTER_S, RestError
from server.jsonrpc import JsonRpcCore

__all__ = ["DISCARD_LIMIT_BYTES", "RpcHandler"]

#: Bytes over the body limit that are still read (and dropped) before answering 413; past
#: that the 413 is sent at once and the connection closed.
DISCARD_LIMIT_BYTES = 1 << 20

_RETRY_AFTER = str(RETRY_AFTER_S)


@tornado.web.stream_request_body
class RpcHandler(BaseHandler):
    """Receives JSON-RPC payloads over HTTP POST; the body streams in to enforce its limit.

    Handler kwargs: ``core`` (the JSON-RPC core), ``max_body_bytes`` (largest body, bytes),
    ``auth_token``.
    """

    def initialize(self, core: JsonRpcCore, max_body_bytes: int, auth_token: str | None) -> None:
        """Take the route kwargs (see the class doc)."""
        self.core = core
        self.max_body_bytes = max_body_bytes
        self.auth_token = auth_token
        self._chunks: list[bytes] = []
        self._size = 0
        self._too_large = False
        self._refusal: RestError | None = None

    def prepare(self) -> None:
        # Refusals wait until the body is read: answering while the client still sends it
        # would reset the connection before the client reads the answer.
        try:
            super().prepare()
        except RestError as refusal:
            self._refusal = refusal
        limit = self.max_body_bytes
        length = self.request.headers.get("Content-Length", "")
        declared = int(length) if length.isdigit() else 0
        if declared > limit + DISCARD_LIMIT_BYTES:
            raise RestError(413, f"request body over {limit} bytes")  # closes the connection
        # A body over the limit is read and dropped, so that the client can read the 413.
        connection = self.request.connection
        if isinstance(connection, HTTP1Connection):
            connection.set_max_body_size(max(declared, limit) + DISCARD_LIMIT_BYTES)

    def _refuse(self) -> None:
        if self._refusal is not None:
            raise self._refusal
        if self._too_large:
            raise RestError(413, f"request body over {self.max_body_bytes} bytes")

    def _wrong_method(self) -> None:
        self._refuse()
        raise RestError(405, "use POST for JSON-RPC", headers={"Allow": "POST"})

    get = put = delete = patch = head = options = _wrong_method

    def data_received(self, chunk: bytes) -> None:
        if self._refusal is not None:
            return
        self._size += len(chunk)
        if self._size > self.max_body_bytes:
            self._too_large = True
            self._chunks.clear()
        elif not self._too_large:
            self._chunks.append(chunk)

    async def post(self) -> None:
        """Answer one JSON-RPC payload (the status table of the module doc)."""
        self._refuse()
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        reply = await self.core.handle(body, {"request_id": self.request_id})
        self.rpc_methods = reply.methods
        if reply.body is None:
            self.set_status(204)
            self.finish()
            return
        if reply.busy:
            self.set_status(503)
            self.set_header("Retry-After", _RETRY_AFTER)
        self.set_header("Content-Type", "application/json")
        self.finish(reply.body)
