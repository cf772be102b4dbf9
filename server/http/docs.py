"""Discovery over HTTP: ``/openrpc.json``, ``/openapi.json``, the ``/docs`` page, ``GET /``.

``/openrpc.json`` serves the document of :class:`server.openrpc_cache.OpenRpcCache` (the one
``rpc.discover`` answers); ``/openapi.json`` the OpenAPI 3.1 document of the HTTP routes, built
from the application's own route table (:mod:`server.openapi`). ``/docs`` is one
self-contained HTML page (``server/static/docs.html``: no CDN, no external file) that loads
both documents next to it, lists the methods with their docs, lets a person try a call (a
form built from the params' schemas, or raw JSON; copy as curl) and lists the REST routes.
``GET /`` from a browser (``Accept: text/html``) is redirected to ``/docs``
(:class:`BrowserRootMatcher`); other requests to ``/`` are JSON-RPC's (``POST /``).

See docs/discovery.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tornado.httputil
import tornado.routing

from server import __version__
from server.http.base import BaseHandler
from server.openapi import RouteRule, build_document, rules_of
from server.openrpc_cache import OpenRpcCache

__all__ = [
    "DOCS_PAGE",
    "BrowserRootMatcher",
    "BrowserRootHandler",
    "DocsHandler",
    "OpenApiHandler",
    "OpenRpcHandler",
]

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


class OpenApiHandler(BaseHandler):
    """``GET /openapi.json``: the OpenAPI 3.1 document of the routes this application serves.

    Built from the application's route table on each request (a few dozen rules), so it is
    always the table's (:func:`server.openapi.build_document`). 200 ``application/json``.

    Handler kwargs: ``auth_token``.
    """

    def initialize(self, auth_token: str | None) -> None:
        """Take the route kwargs (see the class doc)."""
        self.auth_token = auth_token

    def get(self) -> None:
        """Answer the document."""
        document = build_document(rules_of(self.application), "sbusr", __version__)
        self.set_header("Cache-Control", "no-cache")
        self.write_json(document)


class BrowserRootHandler(BaseHandler):
    """``GET /`` from a browser: 302 to ``docs`` (the ``/docs`` page). Needs no token."""

    requires_auth = False

    def get(self) -> None:
        """Redirect to the docs page."""
        self.redirect("/docs", status=302)


class BrowserRootMatcher(tornado.routing.Matcher):
    """Matches ``GET /`` and ``HEAD /`` asking for HTML (a browser's ``Accept: text/html``).

    Put before the ``/`` route of JSON-RPC: a browser opening the server's address gets the
    docs page, while ``POST /`` (and a ``GET /`` of an API client, answered 405) go on to the
    JSON-RPC route as before.
    """

    #: What :func:`server.openapi.rules_of` lists for this rule.
    openapi_rules: tuple[RouteRule, ...] = (("/", BrowserRootHandler, {}),)

    def match(self, request: tornado.httputil.HTTPServerRequest) -> dict[str, Any] | None:
        """``{}`` (no path arguments) for a browser's ``GET /``, else None."""
        if request.path != "/" or request.method not in ("GET", "HEAD"):
            return None
        if "text/html" not in request.headers.get("Accept", ""):
            return None
        return {}
