"""Serving: start the pool and the HTTP server, stop both gracefully on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
from typing import TYPE_CHECKING, Any

import sqlalchemy.engine
import sqlalchemy.exc
import tornado.httpserver
import tornado.netutil

from executor.pool import Pool, ReloadFailed
from server import metrics
from server.app import make_app
from server.discovery import Discovery
from server.jsonrpc import JsonRpcCore
from server.scheduler.handlers import job_routes
from server.scheduler.service import JobScheduler
from settings import Settings

if TYPE_CHECKING:
    from server.bus import Bus

__all__ = ["serve"]

logger = logging.getLogger(__name__)


#: After the pool stopped, how long the bus may still take to send the last answers, seconds.
BUS_CLOSE_TIMEOUT_S = 5.0


def flow_routes(bus: "Bus | None") -> list[Any]:
    """The ``POST /api/flow`` route; it answers 503 when the bus is off (``bus`` None)."""
    from server.flow_handler import FlowHandler
    return [(r"/api/flow", FlowHandler, {"starter": bus.flows if bus is not None else None})]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def serve(settings: Settings, log_level: int = logging.INFO, web: bool = True) -> int:
    """Run the server until SIGTERM or SIGINT, then stop gracefully.

    Starting: the pool, then the job scheduler (``settings.scheduler``), then the message bus
    (with ``settings.redis_url``, :class:`server.bus.Bus`), then HTTP.

    Stopping: the bus reads no new entries, the HTTP server stops accepting and the scheduler
    fires no more jobs; calls already submitted get up to ``settings.shutdown_grace_s`` seconds
    to finish and be answered (running jobs record their state); workers are stopped; the bus
    sends the last answers and acks (up to ``BUS_CLOSE_TIMEOUT_S``).

    Args:
        settings: the server's settings.
        log_level: level for the workers' loggers (a :mod:`logging` number).
        web: serve HTTP (False: no web server; useful once the bus transport is on).

    Returns:
        The process exit code: 0 after a graceful stop, 1 when the methods fail to import or
        the job database cannot be used.
    """
    pool = Pool(settings.methods_dir, settings.pool_processes, settings.pool_maxtasksperchild,
                settings.queue_maxsize, debug=settings.debug, log_level=log_level,
                worker_concurrency=settings.worker_concurrency)
    try:
        started = await pool.start()
    except ReloadFailed as exc:
        for error in exc.errors:
            logger.error("cannot import %s: %s: %s", error.get("module"), error.get("type"),
                         error.get("message"))
        logger.error("the methods in %s failed to import; not serving", settings.methods_dir)
        await pool.shutdown(0)
        return 1
    observer = None
    if settings.metrics:
        pool.observer = metrics.call_metrics.observe_pool_call
        observer = metrics.call_metrics.observe
    metrics.watch_pool(pool)
    discovery = Discovery(pool)
    core = JsonRpcCore(pool, settings.rpc_timeout_s, settings.max_batch,
                       {"rpc.discover": discovery.rpc_discover}, observer=observer)
    jobs = None
    if settings.scheduler:
        jobs = JobScheduler(settings, pool)
        try:
            await jobs.start()
        except sqlalchemy.exc.SQLAlchemyError as exc:
            shown_url = sqlalchemy.engine.make_url(settings.database_url).render_as_string(hide_password=True)
            logger.error("the job database %s cannot be used, not serving: %s", shown_url,
                         getattr(exc, "orig", None) or type(exc).__name__)
            await pool.shutdown(0)
            return 1
        pool.after_reload.append(jobs.sync_declared)
    bus = None
    if settings.redis_url:
        from server.bus import Bus
        bus = Bus(settings, pool, core)
        await bus.start()
    server = None
    if web:
        if not settings.auth_token and not _is_loopback(settings.host):
            logger.warning("listening on %s without SBUSR_AUTH_TOKEN: anyone who reaches this "
                           "address can call every method", settings.host)
        app = make_app(settings, pool, core, job_routes(jobs) + flow_routes(bus), discovery=discovery)
        server = tornado.httpserver.HTTPServer(app, max_body_size=settings.max_body_bytes + (1 << 20))
        sockets = tornado.netutil.bind_sockets(settings.port, address=settings.host)
        server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        logger.info("sbusr serving http://%s:%d/rpc with %d workers (generation %d, %.0f ms)",
                    settings.host, port, settings.pool_processes, started["generation"],
                    started["elapsed_ms"])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    await stop.wait()
    logger.info("stopping: %d calls in flight", pool.in_flight)
    if bus is not None:
        await bus.stop_reading()
    if server is not None:
        server.stop()
    if jobs is not None:
        await jobs.stop()
    await pool.shutdown(settings.shutdown_grace_s)
    if jobs is not None:
        await jobs.close(settings.shutdown_grace_s)
    if bus is not None:
        await bus.close(BUS_CLOSE_TIMEOUT_S)
    if server is not None:
        for _ in range(3):  # let the handlers whose calls just ended write their responses
            await asyncio.sleep(0)
        await server.close_all_connections()
    logger.info("stopped")
    return 0
