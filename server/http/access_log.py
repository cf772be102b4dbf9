"""The access log: one line per finished HTTP request, on the logger ``sbusr.access``."""

from __future__ import annotations

import logging

import tornado.web

from server.http.base import REQUEST_ID_HEADER, BaseHandler

__all__ = ["log_request", "no_log"]

access_logger = logging.getLogger("sbusr.access")


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Write the access log line of one finished HTTP request (logger ``sbusr.access``).

    Message: ``POST /rpc 200 1.3ms echo,add``; the record also carries the fields
    ``request_id``, ``http_method``, ``path``, ``status``, ``duration_ms`` and
    ``rpc_methods`` (a list) for the JSON log format. 5xx answers are logged as warnings.
    """
    request = handler.request
    if isinstance(handler, BaseHandler):
        methods = list(handler.rpc_methods)
        request_id = handler.request_id
    else:
        methods, request_id = [], request.headers.get(REQUEST_ID_HEADER, "-")
    status = handler.get_status()
    duration_ms = request.request_time() * 1000.0
    access_logger.log(
        logging.WARNING if status >= 500 else logging.INFO,
        "%s %s %d %.1fms%s",
        request.method,
        request.path,
        status,
        duration_ms,
        " " + ",".join(methods) if methods else "",
        extra={
            "request_id": request_id,
            "http_method": request.method,
            "path": request.path,
            "status": status,
            "duration_ms": round(duration_ms, 3),
            "rpc_methods": methods,
        },
    )


def no_log(handler: tornado.web.RequestHandler) -> None:
    """The ``log_function`` of an application whose access log is off: writes nothing."""
