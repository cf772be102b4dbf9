"""Discovery over HTTP: ``GET /openrpc.json`` and the ``GET /docs`` page (docs/discovery.md).

``/openrpc.json`` serves the document of :class:`server.openrpc_cache.OpenRpcCache` (the one
``rpc.discover`` answers). ``/docs`` is one self-contained HTML page (``server/static/docs.html``:
no CDN, no external file) that loads ``openrpc.json`` next to it, lists the methods with their
docs and lets a person try a call (params as JSON; the response is shown as it came).
"""

from __future__ import annotations

from pathlib import Path

from server.http.base import BaseHandler
from server.openrpc_cache import OpenRpcCache

__all__ = ["DOCS_PAGE", "DocsHandler", "OpenRpcHandler"]

#: The docs page, served as it is.
DOCS_PAGE = Path(__file__).resolve().parent.parent / "static" / "docs.html"

_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:"
)


class OpenRpcHandler(BaseHandler):
    """``GET /openrpc.json``: the OpenRPC document (same as ``rpc.discover``'s result).

    200 ``application/json``; 503 ``{"error": ...}`` when no worker could build it
    (:class:`~server.openrpc_cache.DocumentUnavailable`, see :mod:`server.http.errors`).

    Handler kwargs: ``documents`` (the cache), ``auth_token``.
    """

    def initialize(self, documents: OpenRpcCache, auth_token: str | None) -> None:
        """Take the route kwargs (see the class doc)."""
        self.documents = documents
        self.auth_token = auth_token

    async def get(self) -> None:
        """Answer the document of the current generation."""
        document = await self.documents.document_json()
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-cache")
        self.finish(document)


class DocsHandler(BaseHandler):
    """``GET /docs``: the HTML page to browse and try the methods; works offline.

    Needs no token itself (it holds no data); the page asks for the token when the server
    has one and sends it with its own requests. No handler kwargs.
    """

    requires_auth = False
    _page: bytes | None = None

    def get(self) -> None:
        """Answer the page (read from :data:`DOCS_PAGE` once)."""
        if DocsHandler._page is None:
            DocsHandler._page = DOCS_PAGE.read_bytes()
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", _CONTENT_SECURITY_POLICY)
        self.finish(DocsHandler._page)
