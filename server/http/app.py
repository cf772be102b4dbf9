"""The Tornado application: the one route table of sbusr (design.md).

=======================================  ===========================  =======================
route                                    handler                      kwargs
=======================================  ===========================  =======================
``GET /`` with ``Accept: text/html``     docs.BrowserRootHandler      (none): 302 to /docs
``POST /rpc``, ``POST /``                rpc.RpcEndpoint (router)     core, auth_token
other methods on ``/rpc``, ``/``         rpc.RpcHandler (405)         auth_token
``GET|POST /sys/reset``                  system.ResetHandler          pool
``GET /sys/status``                      system.StatusHandler         pool
``GET /health_check`` (no token)         system.HealthHandler         pool
``GET /ready`` (no token)                system.ReadyHandler          readiness
``GET /openrpc.json``                    docs.OpenRpcHandler          documents
``GET /openapi.json``                    docs.OpenApiHandler          (none)
``GET /docs`` (no token)                 docs.DocsHandler             (none)
``GET /metrics``                         metrics.MetricsHandler       metrics
``POST /api/flow``                       flow.FlowHandler             starter (None: bus off)
``GET|POST /api/jobs``                   jobs.JobsHandler             scheduler (None: off)
``GET|DELETE /api/jobs/{id}``            jobs.JobHandler              scheduler
``POST /api/jobs/{id}/pause|resume|run`` jobs.JobActionHandler        scheduler
``GET /api/deadletters``                 deadletters (a)              deadletters (None: off)
``GET|DELETE /api/deadletters/{id}``     deadletters (b)              deadletters
``POST /api/deadletters/{id}/replay``    deadletters (c)              deadletters
anything else                            base.NotFoundHandler         (JSON 404)
=======================================  ===========================  =======================

(a) ``DeadLettersHandler``, (b) ``DeadLetterHandler``, (c) ``DeadLetterActionHandler``.

Every handler that requires the bearer token also gets ``auth_token``. ``POST /rpc`` and
``POST /`` are served below ``tornado.web``: :func:`make_router` sends them to
:class:`server.http.rpc.RpcEndpoint` and everything else to the application.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import tornado.routing
import tornado.web

from executor.pool import Pool
from server.http.access_log import log_request, no_log
from server.http.base import NotFoundHandler
from server.http.cors import CorsPolicy
from server.http.deadletters import (
    ENTRY_ID_PATTERN,
    DeadLetterActionHandler,
    DeadLetterHandler,
    DeadLettersHandler,
)
from server.http.docs import (
    BrowserRootHandler,
    BrowserRootMatcher,
    DocsHandler,
    OpenApiHandler,
    OpenRpcHandler,
)
from server.http.flow import FlowHandler
from server.http.idempotent import HttpIdempotency
from server.http.jobs import JOB_ID_PATTERN, JobActionHandler, JobHandler, JobsHandler
from server.http.metrics import MetricsHandler
from server.http.rpc import MATCHER, RpcEndpoint, RpcHandler
from server.http.system import HealthHandler, ReadyHandler, ResetHandler, StatusHandler
from server.idempotency import Idempotency
from server.jsonrpc import JsonRpcCore
from server.metrics import Metrics
from server.openrpc_cache import OpenRpcCache
from server.readiness import Readiness
from server.scheduler.service import JobScheduler
from settings import Settings

if TYPE_CHECKING:  # the bus's classes load redis: a server with the bus off never imports them
    from server.bus.deadletters import DeadLetters
    from server.bus.flow import FlowStarter

__all__ = ["Route", "Services", "make_app", "make_router", "routes"]

#: One rule of the table: ``(pattern, handler class, kwargs of its initialize())``.
Route = tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Services:
    """What the handlers are given (each takes its part as route kwargs).

    Attributes:
        pool: the process pool (``/sys/*``, ``/health_check``).
        core: the JSON-RPC core behind ``/rpc``.
        documents: the OpenRPC document cache (the one ``rpc.discover`` uses).
        metrics: what ``/metrics`` shows.
        scheduler: the job scheduler, or None when it is off (job routes answer 503).
        flows: the bus's flow starter, or None when the bus is off (``/api/flow`` answers 503).
        idempotency: the ``Idempotency-Key`` rules of ``POST /rpc`` (None: the header is
            ignored).
        deadletters: the bus's dead letters, or None when the bus is off (503).
        readiness: the checks of ``/ready``; None: the pool alone (no bus check).
    """

    pool: Pool
    core: JsonRpcCore
    documents: OpenRpcCache
    metrics: Metrics
    scheduler: JobScheduler | None
    flows: FlowStarter | None
    idempotency: Idempotency | None = None
    deadletters: DeadLetters | None = None
    readiness: Readiness | None = None


def routes(settings: Settings, services: Services) -> list[Route]:
    """The route table (see the module doc).

    Args:
        settings: ``auth_token`` is read.
        services: what the handlers are given.

    Returns:
        ``[(pattern, handler, kwargs), ...]`` for :class:`tornado.web.Application`.
    """
    token = settings.auth_token
    pool = services.pool
    rpc = {"auth_token": token}
    jobs = {"scheduler": services.scheduler, "auth_token": token}
    dead = {"deadletters": services.deadletters, "auth_token": token}
    return [
        (r"/rpc", RpcHandler, rpc),
        (r"/", RpcHandler, rpc),
        (r"/sys/reset", ResetHandler, {"pool": pool, "auth_token": token}),
        (r"/sys/status", StatusHandler, {"pool": pool, "auth_token": token}),
        (r"/health_check", HealthHandler, {"pool": pool}),
        (r"/openrpc.json", OpenRpcHandler, {"documents": services.documents, "auth_token": token}),
        (r"/openapi.json", OpenApiHandler, {"auth_token": token}),
        (r"/docs", DocsHandler, {}),
        (r"/metrics", MetricsHandler, {"metrics": services.metrics, "auth_token": token}),
        (r"/api/flow", FlowHandler, {"starter": services.flows, "auth_token": token}),
        (r"/api/jobs", JobsHandler, jobs),
        (rf"/api/jobs/{JOB_ID_PATTERN}", JobHandler, jobs),
        (rf"/api/jobs/{JOB_ID_PATTERN}/(pause|resume|run)", JobActionHandler, jobs),
        (r"/api/deadletters", DeadLettersHandler, dead),
        (rf"/api/deadletters/{ENTRY_ID_PATTERN}", DeadLetterHandler, dead),
        (rf"/api/deadletters/{ENTRY_ID_PATTERN}/replay", DeadLetterActionHandler, dead),
        (r"/ready", ReadyHandler, {"readiness": services.readiness or Readiness(pool)}),
    ]


def make_app(settings: Settings, services: Services) -> tornado.web.Application:
    """Build the application: the routes of :func:`routes`, a JSON 404 for the others.

    A browser's ``GET /`` (``Accept: text/html``) is matched first and redirected to ``/docs``
    (:class:`~server.http.docs.BrowserRootMatcher`); every other request to ``/`` goes on to
    the table's ``/`` route.

    ``POST /rpc`` and ``POST /`` are not served here: serve the application behind
    :func:`make_router` (alone, it answers them 405).

    Args:
        settings: ``auth_token``, ``access_log`` and ``cors_origins`` are read.
        services: what the handlers are given.

    Returns:
        A :class:`tornado.web.Application`.
    """
    browser_root = tornado.routing.Rule(BrowserRootMatcher(), BrowserRootHandler)
    return tornado.web.Application(
        [browser_root, *routes(settings, services)],
        default_handler_class=NotFoundHandler,
        default_handler_args={"auth_token": settings.auth_token},
        log_function=log_request if settings.access_log else no_log,
        cors=CorsPolicy(settings.cors_origins),
    )


def make_router(settings: Settings, services: Services) -> tornado.routing.RuleRouter:
    """The server's router: ``POST /rpc`` and ``POST /`` to :class:`RpcEndpoint`, the rest to
    the application of :func:`make_app` (same settings and services as there)."""
    application = make_app(settings, services)
    endpoint = RpcEndpoint(
        services.core,
        auth_token=settings.auth_token,
        cors=application.settings["cors"],
        access_log=settings.access_log,
        idempotency=HttpIdempotency(services.idempotency) if services.idempotency else None,
    )
    return tornado.routing.RuleRouter(
        [
            tornado.routing.Rule(MATCHER, endpoint),
            tornado.routing.Rule(tornado.routing.AnyMatches(), application),
        ]
    )
