"""The public names of ``kit`` are exactly its ``__all__``, and each one resolves."""

from __future__ import annotations

import subprocess
import sys

import kit
from tests.support import PROJECT_DIR


def test_every_exported_name_resolves() -> None:
    for name in kit.__all__:
        assert getattr(kit, name) is not None, name


def test_the_exports_are_the_expected_ones() -> None:
    assert kit.__all__ == sorted(
        [
            "AsyncClient",
            "Client",
            "DEFAULT_RETRY_EXCEPTIONS",
            "JsonRpcError",
            "KitError",
            "LockError",
            "LockLost",
            "LockNotAcquired",
            "RedisLock",
            "RetryError",
            "RetryPolicy",
            "aiorequests",
            "current_job",
            "get_dataset",
            "get_engine",
            "get_mysql_pool",
            "get_redis",
            "get_redis_pool",
            "lock",
            "mysql_url",
            "one_at_a_time",
            "params_schema",
            "requests",
            "scheduled",
            "session_scope",
        ]
    )


def test_importing_kit_loads_no_heavy_library() -> None:
    code = (
        "import sys, kit; from kit import JsonRpcError, params_schema; "
        "print(sorted(m for m in ('httpx', 'sqlalchemy', 'dataset', 'redis') if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"
