"""The toolkit's examples (examples/toolkit) served and called over HTTP (run.py subprocess)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.kit.conftest import ScriptedServer
from tests.support import PROJECT_DIR, SHIPPED_METHODS, ServerProcess

EXAMPLES = PROJECT_DIR / "examples" / "toolkit"


@pytest.fixture
def examples_dir(tmp_path: Path) -> Path:
    """A private copy of examples/toolkit (the server writes its __pycache__ there)."""
    return Path(
        shutil.copytree(
            EXAMPLES, tmp_path / "examples", ignore=shutil.ignore_patterns("__pycache__")
        )
    )


def _result(server: ServerProcess, method: str, params: Any) -> Any:
    reply = server.call(method, params)
    assert "error" not in reply, (reply, server.log())
    return reply["result"]


def test_example_methods_end_to_end(
    start_server: Callable[..., ServerProcess],
    http_server: ScriptedServer,
    redis_url: str,
    tmp_path: Path,
    examples_dir: Path,
) -> None:
    database_path = tmp_path / "demo.sqlite3"
    server = start_server(
        env={"SBUSR_REDIS_URL": redis_url, "SBUSR_DATABASE_URL": f"sqlite:///{database_path}"},
        methods=examples_dir,
    )

    fetched = _result(server, "demo_http.fetch_status", {"url": http_server.url("/fail/1/503")})
    assert fetched["status"] == 200 and fetched["elapsed_ms"] >= 0

    assert _result(server, "demo_db.count_items", []) == 0
    stored = _result(server, "demo_db.upsert_item", {"name": "alpha", "value": 1})
    assert stored["name"] == "alpha" and stored["value"] == 1
    _result(server, "demo_db.upsert_item", {"name": "alpha", "value": 2})
    assert _result(server, "demo_db.get_item", ["alpha"])["value"] == 2
    assert _result(server, "demo_db.get_item", ["missing"]) is None
    assert _result(server, "demo_db.count_items", []) == 1
    assert database_path.exists()

    assert _result(server, "demo_redis.incr", ["hits"]) == 1
    assert _result(server, "demo_redis.incr", {"name": "hits", "amount": 5}) == 6
    assert redis.Redis.from_url(redis_url).get("sbusr:demo:counter:hits") == b"6"


def test_exhausted_retries_reach_the_caller_as_a_method_error(
    start_server: Callable[..., ServerProcess], http_server: ScriptedServer, examples_dir: Path
) -> None:
    server = start_server(methods=examples_dir)
    reply = server.call("demo_http.fetch_status", {"url": http_server.url("/status/503")})
    assert reply["error"]["code"] == -32000
    assert reply["error"]["data"]["type"] == "RetryError"


def test_the_shipped_methods_do_not_serve_the_examples(
    start_server: Callable[..., ServerProcess], http_server: ScriptedServer
) -> None:
    server = start_server(methods=SHIPPED_METHODS)
    for method, params in (
        ("demo_http.fetch_status", {"url": http_server.url("/status/200")}),
        ("demo_db.upsert_item", {"name": "a", "value": 1}),
        ("demo_redis.incr", ["hits"]),
    ):
        assert server.call(method, params)["error"]["code"] == -32601, method
    assert http_server.hits_for(http_server.url("/status/200")) == 0
