"""Serving: start the pool, the scheduler, the bus and HTTP in order; stop them on a signal.

:func:`serve` is one ordered lifecycle over two :class:`contextlib.AsyncExitStack` objects:
while starting, each part registers how it stops taking work (``stopping``) and how it
closes once the pool has drained (``closing``). A part that fails to start unwinds what
started before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy.engine
import sqlalchemy.exc
import tornado.httpserver
import tornado.netutil

from executor.collector import tune_for_serving
from executor.pool import Pool, ReloadFailed
from server import tracing
from server.http.app import Services, make_router
from server.http.connections import GuardedHTTPServer, connection_limits
from server.http.cors import CorsPolicy
from server.idempotency import memory_idempotency
from server.jsonrpc import JsonRpcCore
from server.metrics import CallMetrics, Metrics
from server.openrpc_cache import OpenRpcCache
from server.readiness import Readiness
from server.scheduler.service import JobScheduler
from server.startup_checks import StartupRefused, is_loopback, listen_refusal
from server.tracing import TracingError
from settings import Settings

__all__ = ["BUS_CLOSE_TIMEOUT_S", "serve"]

logger = logging.getLogger(__name__)


#: After the pool stopped, how long the bus may still take to send the last answers, seconds.
BUS_CLOSE_TIMEOUT_S = 5.0


class _NotServing(Exception):
    """A part could not start (already logged); :func:`serve` exits 1."""


async def _start_pool(settings: Settings, pool: Pool) -> dict[str, Any]:
    """Start the first generation; ``{"generation", "elapsed_ms"}``.

    Raises:
        _NotServing: the methods failed to import (each error logged).
    """
    try:
        return await pool.start()
    except ReloadFailed as exc:
        for error in exc.errors:
            logger.error(
                "cannot import %s: %s: %s",
                error.get("module"),
                error.get("type"),
                error.get("message"),
            )
        logger.error("the methods in %s failed to import; not serving", settings.methods_dir)
        raise _NotServing from exc


async def _start_scheduler(settings: Settings, jobs: JobScheduler) -> None:
    """Start the job scheduler.

    Raises:
        _NotServing: the job database cannot be used (logged, password hidden).
    """
    try:
        await jobs.start()
    except sqlalchemy.exc.SQLAlchemyError as exc:
        shown_url = sqlalchemy.engine.make_url(settings.database_url).render_as_string(
            hide_password=True
        )
        logger.error(
            "the job database %s cannot be used, not serving: %s",
            shown_url,
            getattr(exc, "orig", None) or type(exc).__name__,
        )
        raise _NotServing from exc


def _resync(jobs: JobScheduler) -> Callable[[], Awaitable[None]]:
    """The pool's after-reload hook: the scheduler takes the ``@scheduled`` jobs of the new code."""

    async def resync() -> None:
        await jobs.sync_declared()

    return resync


def _listen(settings: Settings, services: Services) -> tuple[tornado.httpserver.HTTPServer, int]:
    """Serve HTTP on ``settings.host``/``port``; returns the server and the port bound.

    Raises:
        StartupRefused: the address cannot be bound (taken since the start-up checks).
    """
    if not settings.auth_token and not is_loopback(settings.host):
        logger.warning(
            "listening on %s without SBUSR_AUTH_TOKEN (SBUSR_ALLOW_UNAUTHENTICATED): anyone "
            "who reaches this address can call every method",
            settings.host,
        )
    server = GuardedHTTPServer(
        make_router(settings, services),
        limits=connection_limits(settings),
        auth_token=settings.auth_token,
        cors=CorsPolicy(settings.cors_origins),
        access_log=settings.access_log,
    )
    try:
        sockets = tornado.netutil.bind_sockets(settings.port, address=settings.host)
    except OSError as exc:
        raise listen_refusal(settings.host, settings.port, exc) from None
    server.add_sockets(sockets)
    port: int = sockets[0].getsockname()[1]
    return server, port


async def _close_http(server: tornado.httpserver.HTTPServer) -> None:
    """Close the connections once the handlers whose calls just ended wrote their responses."""
    for _ in range(3):
        await asyncio.sleep(0)
    await server.close_all_connections()


async def _signalled() -> None:
    """Return at the first SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    await stop.wait()


async def _stop_task(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it ended."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def serve(
    settings: Settings, log_level: int = logging.INFO, web: bool = True, reload: bool = False
) -> int:
    """Run the server until SIGTERM or SIGINT, then stop gracefully.

    Starting, in order: the pool; the job scheduler (``settings.scheduler``); the message bus
    (with ``settings.redis_url``, :class:`server.bus.Bus`); HTTP (``web``).

    Stopping, in reverse: HTTP stops accepting, the bus reads no new entries, the scheduler
    fires no more jobs; calls already submitted get up to ``settings.shutdown_grace_s``
    seconds to finish and be answered, then the workers stop; then HTTP connections are
    closed once their responses are written, the bus sends the last answers and acks (up to
    :data:`BUS_CLOSE_TIMEOUT_S`), and running jobs record their state (up to the grace).

    Args:
        settings: the server's settings.
        log_level: level for the workers' loggers (a :mod:`logging` number).
        web: serve HTTP (False: no web server; useful once the bus transport is on).
        reload: start a new generation whenever a file of ``settings.methods_dir`` changes
            (development; :func:`server.reloader.watch_methods`).

    Returns:
        The process exit code: 0 after a graceful stop, 1 when the methods fail to import or
        the job database cannot be used, 2 when the HTTP address cannot be bound or
        ``OTEL_TRACES_EXPORTER`` is unknown (with ``SBUSR_TRACING=1``).
    """
    try:
        tracer = tracing.configure(settings.tracing)
    except TracingError as exc:
        logger.error("%s", exc)
        return 2
    pool = Pool(
        settings.methods_dir,
        settings.pool_processes,
        settings.pool_maxtasksperchild,
        settings.queue_maxsize,
        debug=settings.debug,
        log_level=log_level,
        worker_concurrency=settings.worker_concurrency,
        expose_errors=settings.expose_errors,
        drain_timeout_s=settings.drain_deadline_s,
        max_memory_bytes=settings.worker_max_memory_mb * 2**20,
    )
    calls = CallMetrics()
    if settings.metrics:
        pool.observer = calls.observe_pool_call
    pool.tracer = tracer
    documents = OpenRpcCache(pool)
    core = JsonRpcCore(
        pool,
        settings.rpc_timeout_s,
        settings.max_batch,
        {"rpc.discover": documents.rpc_discover},
        observer=calls.observe if settings.metrics else None,
    )
    try:
        async with contextlib.AsyncExitStack() as closing, contextlib.AsyncExitStack() as stopping:
            closing.push_async_callback(tracing.shutdown)  # the last to close: every span ended
            stopping.push_async_callback(pool.shutdown, settings.shutdown_grace_s)
            started = await _start_pool(settings, pool)
            if reload:
                from server.reloader import watch_methods  # watchfiles: development only

                watcher = asyncio.create_task(watch_methods(pool, settings.methods_dir))
                stopping.push_async_callback(_stop_task, watcher)

            jobs = None
            if settings.scheduler:
                jobs = JobScheduler(settings, pool)
                closing.push_async_callback(jobs.close, settings.shutdown_grace_s)
                stopping.push_async_callback(jobs.stop)
                await _start_scheduler(settings, jobs)
                pool.after_reload.append(_resync(jobs))

            bus = None
            if settings.redis_url:
                from server.bus.service import Bus  # redis: loaded only with the bus on

                bus = Bus(settings, pool, core)
                await bus.start()
                closing.push_async_callback(bus.close, BUS_CLOSE_TIMEOUT_S)
                stopping.push_async_callback(bus.stop_reading)

            if web:
                services = Services(
                    pool=pool,
                    core=core,
                    documents=documents,
                    metrics=Metrics(
                        pool,
                        calls,
                        bus.counters if bus is not None else None,
                        jobs.run_counts if jobs is not None else None,
                    ),
                    scheduler=jobs,
                    flows=bus.flows if bus is not None else None,
                    idempotency=bus.idempotency
                    if bus is not None
                    else memory_idempotency(settings),
                    deadletters=bus.deadletters if bus is not None else None,
                    readiness=Readiness(pool, bus.client if bus is not None else None),
                )
                server, port = _listen(settings, services)
                closing.push_async_callback(_close_http, server)
                stopping.callback(server.stop)
                logger.info(
                    "sbusr serving http://%s:%d/rpc with %d workers (generation %d, %.0f ms); "
                    "docs at http://%s:%d/docs",
                    settings.host,
                    port,
                    settings.pool_processes,
                    started["generation"],
                    started["elapsed_ms"],
                    settings.host,
                    port,
                )

            tune_for_serving()
            await _signalled()
            logger.info("stopping: %d calls in flight", pool.in_flight)
    except _NotServing:
        return 1
    except StartupRefused as exc:  # what started before was stopped on the way out
        logger.error("cannot start: %s", exc)
        return 2
    logger.info("stopped")
    return 0
