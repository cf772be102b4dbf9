"""The Tornado application: routes of design.md wired to their handlers."""

from __future__ import annotations

import logging
import time
from typing import Any

import tornado.web

from executor.pool import Pool
from server.base import NotFoundHandler
from server.jsonrpc import JsonRpcCore
from server.rpc_handler import RpcHandler
from server.system import HealthHandler, ResetHandler, StatusHandler
from settings import Settings

__all__ = ["make_app"]

access_logger = logging.getLogger("sbusr.access")


def _log_request(handler: tornado.web.RequestHandler) -> None:
    request = handler.request
    methods = getattr(handler, "rpc_methods", None)
    access_logger.info("%s %s %d %.1fms%s", request.method, request.path, handler.get_status(),
                       request.request_time() * 1000.0,
                       " " + ",".join(methods) if methods else "")


def _no_log(handler: tornado.web.RequestHandler) -> None:
    pass


def make_app(settings: Settings, pool: Pool, rpc_core: JsonRpcCore,
             extra_routes: list[Any] | None = None) -> tornado.web.Application:
    """Build the application.

    Args:
        settings: the server's settings (auth token, limits, access log).
        pool: the process pool (for /sys/*).
        rpc_core: the JSON-RPC core behind /rpc.
        extra_routes: more ``(pattern, handler, kwargs?)`` rules, added before the catch-all.

    Returns:
        A :class:`tornado.web.Application`; unknown routes answer a JSON 404.
    """
    routes: list[Any] = [
        (r"/rpc", RpcHandler),
        (r"/", RpcHandler),
        (r"/sys/reset", ResetHandler),
        (r"/sys/status", StatusHandler),
        (r"/health_check", HealthHandler),
    ]
    routes.extend(extra_routes or [])
    return tornado.web.Application(
        routes,
        default_handler_class=NotFoundHandler,
        log_function=_log_request if settings.access_log else _no_log,
        sbusr=settings, pool=pool, rpc_core=rpc_core, started_at=time.time(),
    )
