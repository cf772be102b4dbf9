"""kit.redis against the real Redis (db 11): caching, bounded pool, time-outs, fork safety."""

from __future__ import annotations

import logging
import multiprocessing
import time
import urllib.parse
from typing import Any

import pytest
import redis

from kit import redis as kit_redis
from kit.redis import get_redis, get_redis_pool, redis_url


def test_get_redis_round_trips_and_is_cached(redis_url: str) -> None:
    client = get_redis(redis_url)
    client.set("k", "v")
    assert client.get("k") == "v"
    assert get_redis(redis_url) is client
    assert get_redis(redis_url, max_connections=3) is not client


def test_pool_is_bounded_with_timeouts_and_health_checks(redis_url: str) -> None:
    client = get_redis(redis_url, max_connections=7, socket_timeout_s=1.5,
                       health_check_interval_s=11)  # fmt: skip
    pool = client.connection_pool
    assert isinstance(pool, redis.BlockingConnectionPool)
    assert pool.max_connections == 7
    assert pool.connection_kwargs["socket_timeout"] == 1.5
    assert pool.connection_kwargs["health_check_interval"] == 11


def test_default_socket_timeout_is_five_seconds(redis_url: str) -> None:
    pool = get_redis(redis_url).connection_pool
    assert pool.connection_kwargs["socket_timeout"] == 5.0


def test_an_exhausted_pool_waits_pool_timeout_then_fails(redis_url: str) -> None:
    pool = get_redis(redis_url, max_connections=2, pool_timeout_s=0.2).connection_pool
    held = [pool.get_connection(), pool.get_connection()]
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        pool.get_connection()
    assert 0.15 <= time.monotonic() - started < 3.0
    for connection in held:
        pool.release(connection)


def test_a_long_blocking_command_needs_a_larger_socket_timeout(redis_url: str) -> None:
    quick = get_redis(redis_url, socket_timeout_s=0.2)
    with pytest.raises(redis.TimeoutError):
        quick.blpop(["never-filled"], timeout=1)
    patient = get_redis(redis_url, socket_timeout_s=3)
    assert patient.blpop(["never-filled"], timeout=0.3) is None


def test_get_redis_pool_takes_fastflyer_arguments(redis_url: str) -> None:
    address = urllib.parse.urlsplit(redis_url)
    host, port, db = address.hostname or "", address.port or 6379, address.path.lstrip("/")
    client = get_redis_pool(host, str(port), None, db)  # the test's own db, never another
    client.set("a", 1)
    assert client.get("a") == "1"
    assert get_redis_pool(host=host, port=port, db=int(db)) is client


def test_redis_url_escapes_credentials() -> None:
    assert redis_url("h", 1, "p@ss/word", 2) == "redis://:p%40ss%2Fword@h:1/2"
    assert redis_url("h", 1, None, 0, username="u") == "redis://u@h:1/0"


def test_default_url_comes_from_the_environment(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SBUSR_REDIS_URL", redis_url)
    expected_db = int(redis_url.rsplit("/", 1)[-1])
    assert get_redis().connection_pool.connection_kwargs["db"] == expected_db


def test_passwords_stay_out_of_cache_keys_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="kit")
    get_redis("redis://:s3cr3t@127.0.0.1:6379/11")
    assert all("s3cr3t" not in key for key in kit_redis._clients._items)
    assert "s3cr3t" not in caplog.text
    assert ":***@127.0.0.1" in caplog.text


def _child_report(url: str, parent_client: redis.Redis, parent_client_id: int, queue: Any) -> None:
    child_client = get_redis(url)
    queue.put(
        {
            "same_object": child_client is parent_client,
            "client_id": child_client.client_id(),
            "parent_id": parent_client_id,
        }
    )


def test_a_forked_child_gets_its_own_client_and_connection(redis_url: str) -> None:
    client = get_redis(redis_url)
    parent_id = client.client_id()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_report, args=(redis_url, client, parent_id, queue))
    child.start()
    report = queue.get(timeout=10)
    child.join(10)
    assert child.exitcode == 0
    assert report["same_object"] is False
    assert report["client_id"] != parent_id
    assert client.client_id() == parent_id  # the parent's connection is intact
