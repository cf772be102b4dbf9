"""What methods reuse: one import for errors, schemas, HTTP, databases, Redis, locks and jobs.

    from kit import JsonRpcError, params_schema      # answers and params (no extra imports)
    from kit import requests, aiorequests, Client    # retrying HTTP (httpx + tenacity)
    from kit import get_engine, session_scope, get_dataset, get_mysql_pool   # databases
    from kit import get_redis, get_redis_pool, lock  # Redis and a Redis lock

    from kit import scheduled, current_job          # scheduled jobs (docs/scheduler.md)
    from kit import one_at_a_time                   # calls that must not overlap (docs/methods.md)

The HTTP, database and Redis pieces are imported on first use of their name (PEP 562), so a
methods module that only needs ``JsonRpcError`` does not load httpx or SQLAlchemy into every
worker. See docs/toolkit.md.
"""

from __future__ import annotations

import importlib
from typing import Any

from executor.params import params_schema as params_schema
from wire.errors import JsonRpcError as JsonRpcError

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
    "get_dataset": "kit.db",
    "get_redis": "kit.redis",
    "get_redis_pool": "kit.redis",
    "lock": "kit.lock",
    "RedisLock": "kit.lock",
    "scheduled": "kit.jobs",
    "current_job": "kit.jobs",
    "one_at_a_time": "kit.concurrency",
}

__all__ = sorted(["JsonRpcError", "params_schema", *_LAZY])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
