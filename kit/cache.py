"""A result cache for methods: per process (cachetools) or shared by every process (Redis).

    from kit import cached

    @cached(ttl_s=60, key=lambda city: city.lower())
    def weather(city: str) -> dict:                 # one entry per city, per worker process
        return requests.get(...).json()

    @cached(ttl_s=300, key=lambda user_id: str(user_id), backend="redis")
    async def profile(user_id: int) -> dict:        # shared by every worker and server
        ...

``key(*args, **kwargs)`` receives the call's arguments and returns the entry's key (a string,
or for ``"local"`` any hashable value); entries live ``ttl_s`` seconds. Sync and ``async def``
functions alike; exceptions are not cached; a missing value and ``None`` are told apart.

``backend="local"``: a ``cachetools.TTLCache`` of at most ``maxsize`` entries (least recently
used dropped first) private to the process. It starts empty in a forked child (the pid is
checked on each use) and belongs to the decorated function, so code imported again after a
reload (``/sys/reset``, a new generation of workers) starts with an empty cache.

``backend="redis"``: the value is stored as JSON (the result encoder of the workers:
``datetime`` becomes an ISO string, a dataclass an object) under
``<bus prefix>:cache:<namespace>:<key>`` with ``SET ... PX`` (``kit.redis.get_redis`` client,
``SBUSR_REDIS_URL`` by default), so a hit returns the decoded JSON; use it for results that
are JSON. ``namespace`` defaults to ``<module>.<qualified name>``: change it when the cached
function's result changes shape. A Redis error is logged as a warning and the function is
called uncached: the cache never fails a call.

The decorated function has ``cache_clear()`` (sync; for Redis it deletes this namespace's
keys with SCAN + UNLINK).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import os
import threading
from collections.abc import Callable, Hashable
from typing import Any, Literal, TypeVar, cast

import cachetools
import redis

from executor.encoding import encode
from kit.config import bus_prefix
from kit.redis import get_redis

__all__ = ["cached"]

logger = logging.getLogger(__name__)

Function = TypeVar("Function", bound=Callable[..., Any])

_MISSING = object()


class _LocalStore:
    """A TTLCache guarded by a lock, emptied when used from another process (after fork)."""

    def __init__(self, ttl_s: float, maxsize: int) -> None:
        self._ttl_s = ttl_s
        self._maxsize = maxsize
        self._new()

    def _new(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._entries: cachetools.TTLCache[Hashable, Any] = cachetools.TTLCache(
            self._maxsize, self._ttl_s
        )

    def _check_process(self) -> None:
        if self._pid != os.getpid():  # inherited from the parent: start empty, fresh lock
            self._new()

    def get(self, key: Hashable) -> Any:
        self._check_process()
        with self._lock:
            return self._entries.get(key, _MISSING)

    def set(self, key: Hashable, value: Any) -> None:
        self._check_process()
        with self._lock:
            self._entries[key] = value

    def clear(self) -> None:
        self._check_process()
        with self._lock:
            self._entries.clear()


class _RedisStore:
    """JSON values under ``<prefix>:cache:<namespace>:<key>`` with a TTL in milliseconds."""

    def __init__(self, ttl_s: float, namespace: str, redis_url: str | None) -> None:
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._namespace = namespace
        self._url = redis_url

    def _key(self, key: Hashable) -> str:
        return f"{bus_prefix()}:cache:{self._namespace}:{key}"

    def get(self, key: Hashable) -> Any:
        try:
            raw = get_redis(self._url).get(self._key(key))
        except redis.RedisError as exc:
            logger.warning("result cache %s: Redis read failed: %s", self._namespace, exc)
            return _MISSING
        return _MISSING if raw is None else json.loads(raw)

    def set(self, key: Hashable, value: Any) -> None:
        payload = encode(value)
        try:
            get_redis(self._url).set(self._key(key), payload, px=self._ttl_ms)
        except redis.RedisError as exc:
            logger.warning("result cache %s: Redis write failed: %s", self._namespace, exc)

    def clear(self) -> None:
        client = get_redis(self._url)
        pattern = f"{bus_prefix()}:cache:{self._namespace}:*"
        keys = list(client.scan_iter(match=pattern, count=500))
        if keys:
            client.unlink(*keys)


def cached(
    *,
    ttl_s: float,
    key: Callable[..., Hashable],
    backend: Literal["local", "redis"] = "local",
    maxsize: int = 1024,
    namespace: str | None = None,
    redis_url: str | None = None,
) -> Callable[[Function], Function]:
    """Cache a function's results for ``ttl_s`` seconds under ``key(*args, **kwargs)``.

    Args:
        ttl_s: seconds an entry lives (> 0).
        key: the entry's key from the call's arguments; a string for ``"redis"``.
        backend: ``"local"`` (this process, cachetools) or ``"redis"`` (shared, JSON values).
        maxsize: most entries of a local cache.
        namespace: Redis key part naming the function (default ``module.qualname``).
        redis_url: the Redis of a ``"redis"`` cache (default ``SBUSR_REDIS_URL``).

    Returns:
        A decorator for a plain or ``async def`` function; the result has ``cache_clear()``.

    Raises:
        ValueError: ``ttl_s`` is not positive or ``backend`` is unknown (at decoration).
        Whatever ``key`` raises (the call is not made).
    """
    if not ttl_s > 0:
        raise ValueError(f"ttl_s must be positive, not {ttl_s!r}")
    if backend not in ("local", "redis"):
        raise ValueError(f"backend must be 'local' or 'redis', not {backend!r}")

    def decorate(function: Function) -> Function:
        store: _LocalStore | _RedisStore
        if backend == "local":
            store = _LocalStore(ttl_s, maxsize)
        else:
            name = namespace or f"{function.__module__}.{function.__qualname__}"
            store = _RedisStore(ttl_s, name, redis_url)
        shared = isinstance(store, _RedisStore)

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def cached_async(*args: Any, **kwargs: Any) -> Any:
                entry = key(*args, **kwargs)
                found = await asyncio.to_thread(store.get, entry) if shared else store.get(entry)
                if found is not _MISSING:
                    return found
                value = await function(*args, **kwargs)
                if shared:
                    await asyncio.to_thread(store.set, entry, value)
                else:
                    store.set(entry, value)
                return value

            wrapper: Any = cached_async
        else:

            @functools.wraps(function)
            def cached_sync(*args: Any, **kwargs: Any) -> Any:
                entry = key(*args, **kwargs)
                found = store.get(entry)
                if found is not _MISSING:
                    return found
                value = function(*args, **kwargs)
                store.set(entry, value)
                return value

            wrapper = cached_sync
        wrapper.cache_clear = store.clear
        return cast(Function, wrapper)

    return decorate
