"""What methods reuse: one import for errors, schemas, HTTP, databases, Redis, locks and jobs.

    from kit import JsonRpcError, params_schema      # answers and params
    from kit import requests, aiorequests, Client    # retrying HTTP (httpx + tenacity)
    from kit import get_engine, session_scope, get_dataset, get_mysql_pool   # databases
    from kit import get_redis, get_redis_pool, lock  # Redis and a Redis lock

    from kit import scheduled, current_job          # scheduled jobs (docs/scheduler.md)
    from kit import one_at_a_time                   # calls that must not overlap (docs/methods.md)
    from kit import cached                          # result cache, per process or in Redis
    from kit import deadline_ms, time_left_s        # the caller's deadline of this call

Every name but ``JsonRpcError`` is imported on first use (PEP 562), so a
methods module that only needs ``JsonRpcError`` does not load httpx or SQLAlchemy into every
worker. Type checkers and editors see every name with its type: the same imports are written
out under ``TYPE_CHECKING`` (and the package ships ``py.typed``). See docs/toolkit.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from wire.errors import JsonRpcError as JsonRpcError

if TYPE_CHECKING:  # what the lazy names below are, for mypy and editors (PEP 484, PEP 561)
    from executor.params import params_schema as params_schema
    from kit.cache import cached as cached
    from kit.concurrency import one_at_a_time as one_at_a_time
    from kit.datasets import get_dataset as get_dataset
    from kit.db import get_engine as get_engine
    from kit.db import get_mysql_pool as get_mysql_pool
    from kit.db import mysql_url as mysql_url
    from kit.db import session_scope as session_scope
    from kit.deadline import deadline_ms as deadline_ms
    from kit.deadline import time_left_s as time_left_s
    from kit.errors import KitError as KitError
    from kit.errors import LockError as LockError
    from kit.errors import LockLost as LockLost
    from kit.errors import LockNotAcquired as LockNotAcquired
    from kit.errors import RetryError as RetryError
    from kit.http import DEFAULT_RETRY_EXCEPTIONS as DEFAULT_RETRY_EXCEPTIONS
    from kit.http import AsyncClient as AsyncClient
    from kit.http import Client as Client
    from kit.http import RetryPolicy as RetryPolicy
    from kit.http import aiorequests as aiorequests
    from kit.http import requests as requests
    from kit.jobs import current_job as current_job
    from kit.jobs import scheduled as scheduled
    from kit.lock import RedisLock as RedisLock
    from kit.lock import lock as lock
    from kit.redis import get_redis as get_redis
    from kit.redis import get_redis_pool as get_redis_pool

# public name -> module that defines it
_LAZY = {
    "KitError": "kit.errors",
    "RetryError": "kit.errors",
    "LockError": "kit.errors",
    "LockNotAcquired": "kit.errors",
    "LockLost": "kit.errors",
    "Client": "kit.http",
    "AsyncClient": "kit.http",
    "RetryPolicy": "kit.http",
    "requests": "kit.http",
    "aiorequests": "kit.http",
    "DEFAULT_RETRY_EXCEPTIONS": "kit.http",
    "get_engine": "kit.db",
    "get_mysql_pool": "kit.db",
    "mysql_url": "kit.db",
    "session_scope": "kit.db",
    "get_dataset": "kit.datasets",
    "get_redis": "kit.redis",
    "get_redis_pool": "kit.redis",
    "lock": "kit.lock",
    "RedisLock": "kit.lock",
    "scheduled": "kit.jobs",
    "current_job": "kit.jobs",
    "one_at_a_time": "kit.concurrency",
    "cached": "kit.cache",
    "deadline_ms": "kit.deadline",
    "time_left_s": "kit.deadline",
    "params_schema": "executor.params",
}

__all__ = sorted(["JsonRpcError", *_LAZY])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
