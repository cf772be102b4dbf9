"""``POST /rpc`` (alias ``POST /``): JSON-RPC 2.0 over HTTP (design.md, "JSON-RPC over HTTP").

A thin adapter over :class:`server.jsonrpc.JsonRpcCore`: 200 with the response, 204 when only
notifications were sent, 503 with ``Retry-After`` when the queue is full, 413 when the body is
over ``max_body_bytes`` (the body streams in and is dropped past the limit, never kept whole),
401/405 as for every route.
"""

from __future__ import annotations

from typing import Any

import tornado.web

from server.base import BaseHandler, RestError

__all__ = ["RpcHandler", "RETRY_AFTER_S"]

#: Seconds a refused caller is asked to wait (``Retry-After`` of a 503).
RETRY_AFTER_S = 1
#: Bytes over the body limit that are still read (and dropped) before answering 413; past
#: that the 413 is sent at once and the connection closed.
DISCARD_LIMIT_BYTES = 1 << 20


@tornado.web.stream_request_body
class RpcHandler(BaseHandler):
    """Receives JSON-RPC payloads over HTTP POST; the body streams in to enforce its limit."""

    def initialize(self) -> None:
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
        limit = self.application.settings["sbusr"].max_body_bytes
        length = self.request.headers.get("Content-Length", "")
        declared = int(length) if length.isdigit() else 0
        if declared > limit + DISCARD_LIMIT_BYTES:
            raise RestError(413, "request body over %d bytes" % limit)  # closes the connection
        # A body over the limit is read and dropped, so that the client can read the 413.
        self.request.connection.set_max_body_size(max(declared, limit) + DISCARD_LIMIT_BYTES)

    def _refuse(self) -> None:
        if self._refusal is not None:
            raise self._refusal
        if self._too_large:
            raise RestError(
                413,
                "request body over %d bytes" % self.application.settings["sbusr"].max_body_bytes,
            )

    def _wrong_method(self) -> None:
        self._refuse()
        raise RestError(405, "use POST for JSON-RPC", headers={"Allow": "POST"})

    get = put = delete = patch = head = options = _wrong_method

    def data_received(self, chunk: bytes) -> None:
        if self._refusal is not None:
            return
        self._size += len(chunk)
        if self._size > self.application.settings["sbusr"].max_body_bytes:
            self._too_large = True
            self._chunks.clear()
        elif not self._too_large:
            self._chunks.append(chunk)

    async def post(self) -> None:
        self._refuse()
        body = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        context: dict[str, Any] = {"request_id": self.request_id}
        reply = await self.application.settings["rpc_core"].handle(body, context)
        self.rpc_methods = reply.methods
        if reply.body is None:
            self.set_status(204)
            self.finish()
            return
        if reply.busy:
            self.set_status(503)
            self.set_header("Retry-After", str(RETRY_AFTER_S))
        self.set_header("Content-Type", "application/json")
        self.finish(reply.body)
