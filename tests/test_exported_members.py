"""The public names of ``kit`` are exactly its ``__all__``, and each one resolves."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

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
            "cached",
            "current_job",
            "deadline_ms",
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
            "time_left_s",
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


def test_type_checkers_see_every_lazy_name() -> None:
    tree = ast.parse((PROJECT_DIR / "kit" / "__init__.py").read_text())
    typed: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom)
                typed.update(alias.asname or alias.name for alias in statement.names)
    assert typed == set(kit._LAZY)
    assert (PROJECT_DIR / "kit" / "py.typed").exists()


GOOD_METHODS = """
from kit import cached, get_engine, get_redis, requests


@cached(ttl_s=10, key=lambda url: url)
def status(url: str) -> int:
    return requests.get(url).status_code


def dialect() -> str:
    return get_engine().dialect.name


def counter(name: str) -> int:
    return int(get_redis().incr(name))
"""

BAD_METHODS = """
from kit import requests


def status(url: str) -> str:
    return requests.get(url).status_code
"""


def test_mypy_sees_the_types_of_kit_in_a_methods_module(tmp_path: Path) -> None:
    (tmp_path / "good_methods.py").write_text(GOOD_METHODS)
    (tmp_path / "bad_methods.py").write_text(BAD_METHODS)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(PROJECT_DIR / "pyproject.toml"),
            "--strict",
            str(tmp_path / "good_methods.py"),
            str(tmp_path / "bad_methods.py"),
        ],
        cwd=PROJECT_DIR,
        env={**os.environ, "MYPYPATH": str(PROJECT_DIR)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, result.stdout + result.stderr
    assert "bad_methods.py:6: error: Incompatible return value type" in errors[0]
    assert 'got "int", expected "str"' in errors[0]
