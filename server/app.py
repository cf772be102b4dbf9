"""The Tornado application: routes of design.md wired to their handlers."""

from __future__ import annotations

import logging
import time
from typing import Any

import tornado.web

from executor.pool import Pool
from server.base import REQUEST_ID_HEADER, NotFoundHandler
from server.discovery import Discovery, DocsHandler, OpenRpcHandler
from server.jsonrpc import JsonRpcCore
from server.metrics import MetricsHandler
from server.rpc_handler import RpcHandler
from server.system import HealthHandler, ResetHandler, StatusHandler
from settings import Settings

__all__ = ["make_app"]

access_logger = logging.getLogger("sbusr.access")


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """Write the access log line of one finished HTTP request (logger ``sbusr.access``).

    Message: ``POST /rpc 200 1.3ms echo,add``; the record also carries the fields
    ``request_id``, ``http_method``, ``path``, ``status``, ``duration_ms`` and
    ``rpc_methods`` (a list) for the JSON log format. 5xx answers are logged as warnings.
    """
    request = handler.request
    methods = getattr(handler, "rpc_methods", None) or []
    status = handler.get_status()
    duration_ms = request.request_time() * 1000.0
    request_id = getattr(handler, "request_id", None) or request.headers.get(REQUEST_ID_HEADER, "-")
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


def _no_log(handler: tornado.web.RequestHandler) -> None:
    pass


def make_app(
    settings: Settings,
    pool: Pool,
    rpc_core: JsonRpcCore,
    extra_routes: list[Any] | None = None,
    discovery: Discovery | None = None,
) -> tornado.web.Application:
    """Build the application.

    Args:
        settings: the server's settings (auth token, limits, access log).
        pool: the process pool (for /sys/*).
        rpc_core: the JSON-RPC core behind /rpc.
        extra_routes: more ``(pattern, handler, kwargs?)`` rules, added before the catch-all.
        discovery: the OpenRPC document cache behind /openrpc.json (the one ``rpc.discover``
            uses); None: a new one on ``pool``.

    Returns:
        A :class:`tornado.web.Application`; unknown routes answer a JSON 404.
    """
    routes: list[Any] = [
        (r"/rpc", RpcHandler),
        (r"/", RpcHandler),
        (r"/sys/reset", ResetHandler),
        (r"/sys/status", StatusHandler),
        (r"/health_check", HealthHandler),
        (r"/openrpc.json", OpenRpcHandler),
        (r"/docs", DocsHandler),
        (r"/metrics", MetricsHandler),
    ]
    routes.extend(extra_routes or [])
    return tornado.web.Application(
        routes,
        default_handler_class=NotFoundHandler,
        log_function=_log_request if settings.access_log else _no_log,
        sbusr=settings,
        pool=pool,
        rpc_core=rpc_core,
        started_at=time.time(),
        discovery=discovery or Discovery(pool),
    )
