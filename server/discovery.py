"""Discovery: ``rpc.discover``, ``GET /openrpc.json`` and the ``GET /docs`` page.

The OpenRPC document is built by a worker (:mod:`executor.discover`; the server process
never imports the user's code) and cached here per pool generation: the first request after
a reload (``pool.generation`` changed) asks a worker again. Concurrent requests for a stale
document share one worker call.

``GET /docs`` is one self-contained HTML page (``server/static/docs.html``: no CDN, no
external file) that loads ``openrpc.json`` next to it, lists the methods with their docs
and lets a person try a call (params as JSON; the response is shown as it came).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from executor.pool import Pool
from server import __version__
from server.base import BaseHandler, json_bytes
from wire.errors import InternalError, JsonRpcError

__all__ = ["Discovery", "OpenRpcHandler", "DocsHandler", "DOCS_PAGE"]

logger = logging.getLogger(__name__)

#: The docs page, served as it is.
DOCS_PAGE = Path(__file__).resolve().parent / "static" / "docs.html"

#: Time limit of the worker call that builds the document, seconds.
DISCOVER_TIMEOUT_S = 30.0


class Discovery:
    """The OpenRPC document of the pool's current generation, cached.

    Args:
        pool: the process pool whose workers build the document.
        title: ``info.title`` of the document.
    """

    def __init__(self, pool: Pool, title: str = "sbusr") -> None:
        self.pool = pool
        self.title = title
        self._generation = -1
        self._fetch: asyncio.Future[bytes] | None = None

    async def document_json(self) -> bytes:
        """Return the document of the current generation as compact UTF-8 JSON bytes.

        Raises:
            JsonRpcError: the worker call failed (its error object: e.g. -32003 busy,
                -32001 time-out); nothing is cached then, the next request tries again.
        """
        generation = self.pool.generation
        if self._fetch is None or self._generation != generation:
            self._generation = generation
            self._fetch = asyncio.ensure_future(self._build(generation))
        fetch = self._fetch
        try:
            return await asyncio.shield(fetch)
        except JsonRpcError:
            if self._fetch is fetch:
                self._fetch = None
            raise

    async def _build(self, generation: int) -> bytes:
        ok, payload = await self.pool.run(
            "rpc.discover",
            {"title": self.title, "version": __version__},
            timeout_s=DISCOVER_TIMEOUT_S,
        )
        if not ok:
            error = json.loads(payload)
            raise JsonRpcError(
                error.get("code", InternalError.code), error.get("message"), error.get("data")
            )
        logger.debug("OpenRPC document of generation %d: %d bytes", generation, len(payload))
        return payload

    async def rpc_discover(self, params: Any) -> Any:
        """The server method ``rpc.discover``: returns the document (a dict).

        Params are ignored (OpenRPC: the discovery method takes none).

        Raises:
            JsonRpcError: see :meth:`document_json`.
        """
        return json.loads(await self.document_json())


class OpenRpcHandler(BaseHandler):
    """``GET /openrpc.json``: the OpenRPC document (same as ``rpc.discover``'s result).

    200 ``application/json``; 503 ``{"error": ...}`` when no worker could build it.
    Application setting read: ``discovery`` (a :class:`Discovery`).
    """

    async def get(self) -> None:
        try:
            document = await self.application.settings["discovery"].document_json()
        except JsonRpcError as error:
            self.set_status(503)
            self.set_header("Content-Type", "application/json")
            self.finish(
                json_bytes(
                    {
                        "error": {
                            "code": 503,
                            "message": "cannot build the document",
                            "details": error.to_object(),
                        }
                    }
                )
            )
            return
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-cache")
        self.finish(document)


class DocsHandler(BaseHandler):
    """``GET /docs``: the HTML page to browse and try the methods; works offline.

    Needs no token itself (it holds no data); the page asks for the token when the server
    has one and sends it with its own requests.
    """

    requires_auth = False
    _page: bytes | None = None

    def get(self) -> None:
        if DocsHandler._page is None:
            DocsHandler._page = DOCS_PAGE.read_bytes()
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header(
            "Content-Security-Policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            "connect-src 'self'; img-src data:",
        )
        self.finish(DocsHandler._page)
