"""The access log: one line per finished HTTP request, on the logger ``sbusr.access``.

Both paths write it through :func:`log_access`: the ``tornado.web`` handlers (the
application's ``log_function``, :func:`log_request`) and the ``POST /rpc`` path of
:mod:`server.http.rpc`. Paths and method names are the caller's: in text logs their control
characters are escaped by the formatter (:mod:`server.log_text`), so they cannot forge lines.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import tornado.web

from server.http.base import REQUEST_ID_HEADER, BaseHandler

__all__ = ["log_access", "log_request", "no_log"]

access_logger = logging.getLogger("sbusr.access")


def log_access(
    http_method: str,
    path: str,
    status: int,
    duration_ms: float,
    rpc_methods: Sequence[str],
    request_id: str,
) -> None:
    """Write the access log line of one finished HTTP request (logger ``sbusr.access``).

    Message: ``POST /rpc 200 1.3ms echo,add``; the record also carries the fields
    ``request_id``, ``http_method``, ``path``, ``status``, ``duration_ms`` and
    ``rpc_methods`` (a list) for the JSON log format. 5xx answers are logged as warnings.

    Args:
        http_method: the request's method, e.g. ``POST``.
        path: the request's path, without the query.
        status: the response's HTTP status.
        duration_ms: from the request's headers to its response, milliseconds.
        rpc_methods: the JSON-RPC methods the request called, in order.
        request_id: the request's id (see :func:`server.http.base.request_id_of`).
    """
    level = logging.WARNING if status >= 500 else logging.INFO
    if not access_logger.isEnabledFor(level):
        return
    methods = list(rpc_methods)
    access_logger.log(
        level,
        "%s %s %d %.1fms%s",
        http_method,
        path,
        status,
        duration_ms,
        " " + ",".join(methods) if methods else "",
        extra={
            "request_id": request_id,
            "http_method": http_method,
            "path": path,
            "status": status,
            "duration_ms": round(duration_ms, 3),
            "rpc_methods": methods,
        },
    )


def log_request(handler: tornado.web.RequestHandler) -> None:
    """The ``log_function`` of the application: :func:`log_access` for one handler's request."""
    request = handler.request
    if isinstance(handler, BaseHandler):
        methods: Sequence[str] = handler.rpc_methods
        request_id = handler.request_id
    else:
        methods, request_id = (), request.headers.get(REQUEST_ID_HEADER, "-")
    log_access(
        request.method or "",
        request.path,
        handler.get_status(),
        request.request_time() * 1000.0,
        methods,
        request_id,
    )


def no_log(handler: tornado.web.RequestHandler) -> None:
    """The ``log_function`` of an application whose access log is off: writes nothing."""
