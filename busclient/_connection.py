"""Redis clients of the bus: the one place that builds them, with their timeouts and retries.

redis-py 8 defaults to a 5 s socket timeout and retries a failed command three times with
up to 10 s of back-off. The bus wants neither: blocking reads (``XREADGROUP BLOCK``,
``BLMPOP``) wait longer than 5 s by design, and an outage must surface at once so the caller
can back off and log once (:mod:`busclient._backoff`). So every client here gets a socket
timeout of its longest block plus :data:`SOCKET_MARGIN_S`, and no command-level retries.
URLs in messages are masked with :func:`wire.redact.redact_url`.
"""

from __future__ import annotations

import redis
import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from busclient._errors import BusConnectionError, BusError
from wire.redact import redact_url

__all__ = [
    "CONNECTION_ERRORS",
    "SOCKET_MARGIN_S",
    "UNUSABLE_ERRORS",
    "async_redis",
    "send_error",
    "sync_redis",
]

#: What a lost, refused or stalled Redis raises (``BusyLoadingError`` is a ConnectionError).
#: redis-py maps socket errors to these; the builtin TimeoutError (an OSError) is not among
#: them, so ``asyncio.timeout`` expiries are never mistaken for an outage.
CONNECTION_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

#: What a Redis that cannot be used for the bus raises: :data:`CONNECTION_ERRORS`, or a command
#: refused (``ResponseError``: e.g. a key of the wrong type, Redis out of memory, ``NOSCRIPT``).
UNUSABLE_ERRORS = (*CONNECTION_ERRORS, redis.exceptions.ResponseError)

#: Seconds added to the longest block of a connection to make its socket timeout.
SOCKET_MARGIN_S = 5.0


def sync_redis(url: str, block_s: float = 0.0, max_connections: int | None = None) -> redis.Redis:
    """A blocking-IO Redis client for ``url`` (bytes in, bytes out).

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]`` (or ``rediss://``, ``unix://``).
        block_s: the longest server-side block of a command sent on it, seconds.
        max_connections: bound of the connection pool (callers wait for a free connection
            when all are busy); None: unbounded.

    Returns:
        A ``redis.Redis`` with socket timeout ``block_s + SOCKET_MARGIN_S`` and no command
        retries. Nothing connects before its first command; an unreachable Redis then raises
        one of :data:`CONNECTION_ERRORS`.

    Raises:
        ValueError: ``url`` is not a Redis URL.
    """
    kwargs = dict(socket_timeout=block_s + SOCKET_MARGIN_S, retry=Retry(NoBackoff(), 0))
    if max_connections is not None:
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=None, **kwargs
        )
        return redis.Redis(connection_pool=pool)
    return redis.Redis.from_url(url, **kwargs)


def async_redis(url: str, block_s: float = 0.0, retries: int = 0) -> redis.asyncio.Redis:
    """An asyncio Redis client for ``url`` (bytes in, bytes out).

    Args:
        url, block_s: as for :func:`sync_redis`.
        retries: immediate retries of a command that met a broken connection. 1 suits
            idempotent users (the server): after a Redis restart every pooled connection
            fails once, and the retry goes out on a fresh one instead of reporting an outage
            that is already over. 0 for senders whose command must not run twice (XADD).

    Returns:
        A ``redis.asyncio.Redis`` (unbounded pool); close it with ``await client.aclose()``.

    Raises:
        ValueError: ``url`` is not a Redis URL.
    """
    return redis.asyncio.Redis.from_url(
        url, socket_timeout=block_s + SOCKET_MARGIN_S, retry=AsyncRetry(NoBackoff(), retries)
    )


def send_error(url: str, exc: BaseException) -> BusError:
    """Map a redis-py error of a send to the client's exception (connection errors apart).

    Returns:
        :class:`BusConnectionError` for a lost/refused/stalled Redis, else :class:`BusError`.
    """
    if isinstance(exc, CONNECTION_ERRORS):
        return BusConnectionError(f"cannot reach the bus at {redact_url(url)}: {exc}")
    return BusError(f"Redis refused the request: {type(exc).__name__}: {exc}")
