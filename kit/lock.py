"""A Redis lock with automatic renewal, usable as a context manager and as a decorator.

Guarantees (single Redis server):

- Exclusive: the lock is a key set with ``SET NX PX`` holding a random token; only
  one holder at a time. The key is ``<SBUSR_BUS_PREFIX>:lock:<name>``
  (:meth:`wire.keys.BusKeys.lock`, ``sbusr:lock:<name>`` by default), or
  ``<key_prefix><name>`` when a ``key_prefix`` is given.
- Bounded: the key expires ``ttl_s`` seconds after it was last set, so a holder
  that dies (crash, kill -9) frees the lock within ``ttl_s``.
- Renewed: while held, a daemon thread resets the expiry to ``ttl_s`` every
  ``ttl_s / 3`` seconds, so a holder that runs longer than ``ttl_s`` keeps it.
- Safe release: release and renewal are Lua scripts that act only if the key
  still holds our token (redis-py's ``Lock``), so a holder never deletes or
  extends a lock that expired and now belongs to someone else; it gets
  ``LockLost`` instead.

Not guaranteed: exclusion when the renewal thread cannot reach Redis for longer
than ``ttl_s`` (the lock expires; release then raises ``LockLost``), or across a
Redis fail-over that loses the key.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.exceptions import LockError as RedisLockError
from redis.exceptions import LockNotOwnedError

from kit.config import bus_prefix
from kit.errors import LockLost, LockNotAcquired
from kit.redis import get_redis
from wire.keys import BusKeys

__all__ = ["RedisLock", "lock", "lock_key"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def lock_key(name: str, key_prefix: str | None = None) -> str:
    """The Redis key of the lock ``name``.

    Args:
        name: the lock name, e.g. ``"nightly"``.
        key_prefix: an explicit prefix; None: the bus's lock keys (``SBUSR_BUS_PREFIX``).

    Returns:
        ``key_prefix + name``, or e.g. ``"sbusr:lock:nightly"`` (:meth:`wire.keys.BusKeys.lock`).
    """
    if key_prefix is not None:
        return key_prefix + name
    return BusKeys(bus_prefix()).lock(name)


class RedisLock:
    """One lock on one Redis key; see the module docstring for the guarantees.

    Use ``lock(...)`` to build one. As a context manager it acquires on entry and
    releases on exit; as a decorator each call of the function holds the lock
    (a fresh ``RedisLock`` per call, so concurrent calls exclude each other).

    Args:
        name: lock name (the key is :func:`lock_key`, e.g. ``sbusr:lock:<name>``).
        ttl_s: seconds the key lives without renewal (> 0).
        blocking: wait for the lock when it is held (else fail at once).
        blocking_timeout_s: with ``blocking``, give up after this many seconds
            (``None``: wait for ever).
        renew: keep extending the key while held (``False``: it expires after ``ttl_s``).
        client: a ``redis.Redis``; ``None`` uses ``kit.redis.get_redis()``.
        key_prefix: prefix of the key, replacing ``<SBUSR_BUS_PREFIX>:lock:``
            (None: that default).
        poll_interval_s: how often a blocked acquire retries.
    """

    def __init__(
        self,
        name: str,
        ttl_s: float = 30.0,
        *,
        blocking: bool = True,
        blocking_timeout_s: float | None = None,
        renew: bool = True,
        client: redis.Redis | None = None,
        key_prefix: str | None = None,
        poll_interval_s: float = 0.05,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be > 0 seconds, got {ttl_s!r}")
        self.name = name
        self.key = lock_key(name, key_prefix)
        self.ttl_s = ttl_s
        self.blocking = blocking
        self.blocking_timeout_s = blocking_timeout_s
        self.renew = renew
        self.poll_interval_s = poll_interval_s
        self._client = client
        self._lock: redis.lock.Lock | None = None
        self._stop_renewing = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = False
        """True once renewal found the lock no longer ours."""

    def _settings(self) -> dict[str, Any]:
        return {
            "ttl_s": self.ttl_s,
            "blocking": self.blocking,
            "blocking_timeout_s": self.blocking_timeout_s,
            "renew": self.renew,
            "client": self._client,
            "key_prefix": self.key[: len(self.key) - len(self.name)],
            "poll_interval_s": self.poll_interval_s,
        }

    @property
    def held(self) -> bool:
        """True between a successful ``acquire()`` and ``release()``."""
        return self._lock is not None

    def acquire(self) -> None:
        """Take the lock, waiting as the ``blocking`` settings say.

        Raises:
            LockNotAcquired: held by another holder (at once when not blocking,
                else after ``blocking_timeout_s``).
            RuntimeError: this object already holds the lock.
            redis.exceptions.RedisError: Redis cannot be reached.
        """
        if self._lock is not None:
            raise RuntimeError(f"lock {self.name!r} is already held by this object")
        client = self._client or get_redis()
        redis_lock = client.lock(
            self.key,
            timeout=self.ttl_s,
            sleep=self.poll_interval_s,
            blocking=self.blocking,
            blocking_timeout=self.blocking_timeout_s,
            thread_local=False,  # the renewal thread must see the token
        )
        if not redis_lock.acquire():
            raise LockNotAcquired(
                f"lock {self.name!r} is held by another holder"
                + (f" (waited {self.blocking_timeout_s} s)" if self.blocking else "")
            )
        self._lock = redis_lock
        self.lost = False
        if self.renew:
            self._stop_renewing.clear()
            self._renewer = threading.Thread(
                target=self._renew_until_released,
                name=f"lock-renewal:{self.name}",
                daemon=True,
            )
            self._renewer.start()
        logger.debug("acquired lock %s (ttl %.3f s)", self.key, self.ttl_s)

    def _renew_until_released(self) -> None:
        interval_s = self.ttl_s / 3
        while not self._stop_renewing.wait(interval_s):
            redis_lock = self._lock
            if redis_lock is None:
                return
            try:
                redis_lock.reacquire()
            except LockNotOwnedError:
                self.lost = True
                logger.warning("lock %s expired while held; it is no longer ours", self.key)
                return
            except redis.RedisError as exc:
                logger.warning("could not renew lock %s: %s; will retry", self.key, exc)

    def release(self) -> None:
        """Stop renewing and delete the key if it still holds our token.

        Raises:
            LockLost: the lock expired while held (it may belong to another
                holder now, whose key is left alone).
            RuntimeError: the lock is not held by this object.
        """
        redis_lock, self._lock = self._lock, None
        if redis_lock is None:
            raise RuntimeError(f"lock {self.name!r} is not held by this object")
        self._stop_renewing.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        try:
            redis_lock.release()
        except (LockNotOwnedError, RedisLockError) as exc:
            raise LockLost(
                f"lock {self.name!r} expired before it was released; another holder may have it"
            ) from exc
        logger.debug("released lock %s", self.key)

    def __enter__(self) -> RedisLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is None:
            self.release()
            return
        try:
            self.release()
        except LockLost as lost:
            # The block's own error is the one to surface; note the lost lock.
            logger.warning("%s (while handling %s)", lost, getattr(exc_type, "__name__", exc_type))

    def __call__(self, func: F) -> F:
        """Decorate ``func`` (sync or ``async def``) so each call runs holding the lock."""
        settings = self._settings()
        name = self.name

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                held = RedisLock(name, **settings)
                await asyncio.to_thread(held.acquire)  # Redis calls stay off the loop
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    await asyncio.to_thread(held.__exit__, type(exc), exc, exc.__traceback__)
                    raise
                await asyncio.to_thread(held.release)
                return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with RedisLock(name, **settings):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def __repr__(self) -> str:
        state = "held" if self.held else "not held"
        return f"<RedisLock {self.key!r} ttl_s={self.ttl_s} {state}>"


def lock(name: str, ttl_s: float = 30.0, **options: Any) -> RedisLock:
    """Return a Redis lock named ``name`` that expires ``ttl_s`` seconds after its last renewal.

    Args:
        name: lock name; the key is ``<SBUSR_BUS_PREFIX>:lock:<name>`` (``sbusr:lock:<name>``)
            unless ``key_prefix`` is given.
        ttl_s: seconds (> 0).
        **options: keyword arguments of ``RedisLock``: ``blocking``,
            ``blocking_timeout_s``, ``renew``, ``client``, ``key_prefix``,
            ``poll_interval_s``.

    Returns:
        A ``RedisLock``: ``with lock(...):`` or ``@lock(...)``; entering raises
        ``LockNotAcquired`` when another holder keeps it.

    Examples::

        with lock("nightly-report", ttl_s=60):
            build_report()

        @lock("sync-users", ttl_s=30, blocking=False)
        def sync_users(): ...

    Raises:
        ValueError: ``ttl_s`` is not positive.
        TypeError: an unknown option.
    """
    return RedisLock(name, ttl_s, **options)
