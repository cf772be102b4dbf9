"""A per-process cache of connection pools (engines, dataset databases, Redis clients).

A pool must never be shared across a process boundary: after ``fork()`` the child
inherits the parent's open sockets, and two processes talking on one socket
corrupt each other's conversations. ``ProcessCache`` therefore

- remembers the pid it was filled in and, on any access from another pid, starts
  empty (this covers ``os.fork``, ``multiprocessing`` 'fork' and worker pools);
- also empties itself in a fork's child right away (``os.register_at_fork``).

Inherited objects are *abandoned*, not closed: closing them in the child would
send "quit"/"terminate" messages on sockets that the parent still uses. They are
kept referenced in the child (so garbage collection never finalises them) after
an optional ``on_abandon`` hook ran for each, e.g. SQLAlchemy's
``engine.dispose(close=False)`` so an engine a caller still holds gets a fresh pool;
whatever the hook returns (e.g. the engine's old pool) is kept referenced too.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

_all_caches: weakref.WeakSet[ProcessCache[Any]] = weakref.WeakSet()
# Objects inherited from the parent process; referenced so that they are never
# garbage-collected (and so never closed) in this process.
_abandoned: list[object] = []


class ProcessCache(Generic[T]):
    """A lock-protected ``key -> object`` cache that is private to one process.

    Args:
        kind: a short label used in log lines, e.g. ``"engine"``.
        on_abandon: called with each inherited object in a fork's child, before
            it is dropped from the cache; must not close sockets. Its return
            value (anything holding inherited connections) is kept referenced.
    """

    def __init__(self, kind: str, on_abandon: Callable[[T], object] | None = None) -> None:
        self.kind = kind
        self._on_abandon = on_abandon
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._items: dict[str, T] = {}
        _all_caches.add(self)

    def get_or_create(self, key: str, factory: Callable[[], T]) -> T:
        """Return the object cached under ``key`` in this process, creating it if needed.

        Args:
            key: a cache key without secrets (see ``wire.redact.cache_key_for_url``).
            factory: builds the object; called at most once per key and process.

        Returns:
            The cached object. Errors raised by ``factory`` propagate and nothing
            is cached.
        """
        with self._lock:
            self._forget_if_inherited()
            item = self._items.get(key)
            if item is None:
                item = factory()
                self._items[key] = item
                logger.debug("created %s %s in pid %d", self.kind, key, self._pid)
            return item

    def clear(self, close: Callable[[T], None] | None = None) -> None:
        """Empty the cache, calling ``close`` on each object created in this process."""
        with self._lock:
            self._forget_if_inherited()
            items, self._items = list(self._items.values()), {}
        if close is not None:
            for item in items:
                close(item)

    def __len__(self) -> int:
        with self._lock:
            self._forget_if_inherited()
            return len(self._items)

    def _forget_if_inherited(self) -> None:
        pid = os.getpid()
        if pid == self._pid:
            return
        inherited, self._items, self._pid = self._items, {}, pid
        for item in inherited.values():
            if self._on_abandon is not None:
                _abandoned.append(self._on_abandon(item))
            _abandoned.append(item)
        if inherited:
            logger.debug("pid %d dropped %d inherited %s(s)", pid, len(inherited), self.kind)


def _after_fork_in_child() -> None:
    for cache in list(_all_caches):
        # A fresh lock: the parent's may have been held by another thread at fork time.
        cache._lock = threading.RLock()
        cache._forget_if_inherited()


os.register_at_fork(after_in_child=_after_fork_in_child)
