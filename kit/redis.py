"""Redis clients for methods: bounded, health-checked connection pools cached per process.

``get_redis(url)`` returns a ``redis.Redis`` client backed by a
``BlockingConnectionPool``: at most ``max_connections`` connections; a caller that
finds them all busy waits up to ``pool_timeout_s`` seconds, then gets
``redis.exceptions.ConnectionError``. Idle connections are checked with a PING
when unused for ``health_check_interval_s`` seconds.

Time-outs: every command times out after ``socket_timeout_s`` (default 5 s, the
redis-py 8 default). A blocking command that may wait longer (BLPOP, BRPOP,
XREADGROUP BLOCK, WAIT) needs a client with a larger ``socket_timeout_s`` than
its block time, or it fails with ``redis.exceptions.TimeoutError`` at 5 s.

Clients are cached per process and per URL + options (password masked in the
key); after ``fork()`` the child creates its own (see ``kit._process_cache``).
The default URL is ``SBUSR_REDIS_URL``, else ``redis://127.0.0.1:6379/0``.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import redis

from kit._process_cache import ProcessCache
from kit.config import default_redis_url
from wire.redact import cache_key_for_url, redact_url

__all__ = ["close_all", "get_redis", "get_redis_pool", "redis_url"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_CONNECTIONS = 50
DEFAULT_SOCKET_TIMEOUT_S = 5.0
DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_POOL_TIMEOUT_S = 20.0
DEFAULT_HEALTH_CHECK_INTERVAL_S = 30

_clients: ProcessCache[redis.Redis] = ProcessCache("redis client")


def get_redis(
    url: str | None = None,
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    socket_timeout_s: float | None = DEFAULT_SOCKET_TIMEOUT_S,
    socket_connect_timeout_s: float | None = DEFAULT_CONNECT_TIMEOUT_S,
    pool_timeout_s: float | None = DEFAULT_POOL_TIMEOUT_S,
    health_check_interval_s: int = DEFAULT_HEALTH_CHECK_INTERVAL_S,
    decode_responses: bool = True,
    **connection_options: Any,
) -> redis.Redis:
    """Return this process's Redis client for ``url``, creating it (and its pool) on first use.

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]`` or ``rediss://``/``unix://``;
            ``None``: ``SBUSR_REDIS_URL`` or ``redis://127.0.0.1:6379/0``.
        max_connections: upper bound of open connections in the pool.
        socket_timeout_s: seconds a command may take (``None``: no limit).
        socket_connect_timeout_s: seconds to connect (``None``: no limit).
        pool_timeout_s: seconds to wait for a free connection when all
            ``max_connections`` are busy (``None``: wait for ever).
        health_check_interval_s: a connection idle this many seconds is PINGed before use.
        decode_responses: return ``str`` instead of ``bytes``.
        **connection_options: passed to the connections (``client_name``, ``ssl_cert_reqs``...).

    Returns:
        A ``redis.Redis``; the same object for the same URL and options in this process.

    Raises:
        ValueError: the URL cannot be parsed. Connecting happens on the first command,
        which raises ``redis.exceptions.ConnectionError`` / ``TimeoutError``.
    """
    url = url or default_redis_url()
    options = {
        "max_connections": max_connections,
        "socket_timeout": socket_timeout_s,
        "socket_connect_timeout": socket_connect_timeout_s,
        "timeout": pool_timeout_s,
        "health_check_interval": health_check_interval_s,
        "decode_responses": decode_responses,
        **connection_options,
    }
    key = cache_key_for_url(url, sorted(options.items(), key=str))

    def create() -> redis.Redis:
        logger.info("creating redis pool for %s", redact_url(url))
        pool = redis.BlockingConnectionPool.from_url(url, **options)
        return redis.Redis(connection_pool=pool)

    return _clients.get_or_create(key, create)


def redis_url(
    host: str = "127.0.0.1",
    port: int | str = 6379,
    password: str | None = None,
    db: int | str = 0,
    *,
    username: str | None = None,
) -> str:
    """Build a ``redis://`` URL; the user name and password are percent-escaped."""
    userinfo = ""
    if password:
        userinfo = f"{quote(username or '', safe='')}:{quote(password, safe='')}@"
    elif username:
        userinfo = f"{quote(username, safe='')}@"
    return f"redis://{userinfo}{host}:{int(port)}/{int(db)}"


def get_redis_pool(
    host: str = "127.0.0.1",
    port: int | str = 6379,
    password: str | None = None,
    db: int | str = 0,
    **options: Any,
) -> redis.Redis:
    """Return the cached Redis client for a host (fastflyer's ``get_redis_pool`` arguments).

    Like fastflyer's helper of this name it returns a ready *client* (use it as
    ``get_redis_pool(...).set("a", 1)``); its pool is ``client.connection_pool``.

    Args:
        host, port, password, db: where to connect (``port``/``db`` may be strings,
            as read from the environment).
        **options: see ``get_redis`` (``max_connections``, ``socket_timeout_s``...).
    """
    return get_redis(redis_url(host, port, password, db), **options)


def close_all() -> None:
    """Disconnect every Redis client this process created and forget them (shutdown, tests)."""
    _clients.clear(close=lambda client: client.connection_pool.disconnect())
