"""kit.cache: results cached per process (cachetools) and in Redis, sync and async, with a TTL."""

from __future__ import annotations

import asyncio
import datetime
import os
from typing import Any

import pytest
import redis

from kit.cache import cached
from kit.config import bus_prefix
from tests.support import wait_for


class Counter:
    """Counts the calls that really ran."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, value: Any) -> Any:
        self.calls += 1
        return value


def test_local_cache_returns_the_stored_result_per_key() -> None:
    ran = Counter()

    @cached(ttl_s=60, key=lambda n: n)
    def square(n: int) -> int:
        result: int = ran(n * n)
        return result

    assert [square(3), square(3), square(4)] == [9, 9, 16]
    assert ran.calls == 2


def test_local_cache_keeps_none_and_not_exceptions() -> None:
    ran = Counter()

    @cached(ttl_s=60, key=lambda fail: fail)
    def maybe(fail: bool) -> None:
        ran(None)
        if fail:
            raise ValueError("no")

    assert maybe(False) is None and maybe(False) is None
    with pytest.raises(ValueError):
        maybe(True)
    with pytest.raises(ValueError):
        maybe(True)
    assert ran.calls == 3


def test_local_entries_expire_after_ttl() -> None:
    ran = Counter()

    @cached(ttl_s=0.05, key=lambda: "k")
    def now() -> int:
        result: int = ran(ran.calls + 1)
        return result

    first = now()
    assert wait_for(lambda: now() != first, timeout_s=5, message="the entry to expire")
    assert ran.calls >= 2


def test_cache_clear_empties_a_local_cache() -> None:
    ran = Counter()

    @cached(ttl_s=60, key=lambda: "k")
    def value() -> int:
        result: int = ran(1)
        return result

    value()
    value.cache_clear()  # type: ignore[attr-defined]
    value()
    assert ran.calls == 2


async def test_local_cache_of_an_async_function() -> None:
    ran = Counter()

    @cached(ttl_s=60, key=lambda name: name)
    async def greet(name: str) -> str:
        await asyncio.sleep(0)
        result: str = ran(f"hi {name}")
        return result

    assert [await greet("a"), await greet("a")] == ["hi a", "hi a"]
    assert ran.calls == 1


def test_a_forked_child_starts_with_an_empty_local_cache() -> None:
    ran = Counter()

    @cached(ttl_s=60, key=lambda: "k")
    def pid() -> int:
        result: int = ran(os.getpid())
        return result

    assert pid() == os.getpid()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its own pid, not the parent's cached one
        os.write(write, b"1" if pid() == os.getpid() else b"0")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(child, 0)
    assert answer == b"1"


def test_redis_cache_is_shared_and_holds_json(redis_url: str) -> None:
    ran = Counter()

    def stamp(day: int) -> dict[str, Any]:
        result: dict[str, Any] = ran({"day": datetime.date(2024, 1, day)})
        return result

    first = cached(
        ttl_s=60,
        key=lambda day: str(day),
        backend="redis",
        namespace="t.stamp",
        redis_url=redis_url,
    )(stamp)
    second = cached(
        ttl_s=60,
        key=lambda day: str(day),
        backend="redis",
        namespace="t.stamp",
        redis_url=redis_url,
    )(stamp)
    assert first(2) == {"day": datetime.date(2024, 1, 2)}  # the miss returns the value itself
    assert second(2) == {"day": "2024-01-02"}  # a hit returns the JSON, from the other cache
    assert ran.calls == 1
    client = redis.Redis.from_url(redis_url)
    key = f"{bus_prefix()}:cache:t.stamp:2"
    assert client.get(key) == b'{"day":"2024-01-02"}'
    assert 0 < client.pttl(key) <= 60_000
    client.close()


def test_redis_entries_expire_after_ttl(redis_url: str) -> None:
    ran = Counter()

    @cached(ttl_s=0.05, key=lambda: "k", backend="redis", namespace="t.expire", redis_url=redis_url)
    def count() -> int:
        result: int = ran(ran.calls + 1)
        return result

    first = count()
    assert wait_for(lambda: count() != first, timeout_s=5, message="the Redis entry to expire")


async def test_redis_cache_of_an_async_function_and_clear(redis_url: str) -> None:
    ran = Counter()

    @cached(
        ttl_s=60, key=lambda n: str(n), backend="redis", namespace="t.async", redis_url=redis_url
    )
    async def double(n: int) -> int:
        result: int = ran(2 * n)
        return result

    assert [await double(4), await double(4)] == [8, 8]
    assert ran.calls == 1
    double.cache_clear()  # type: ignore[attr-defined]
    assert await double(4) == 8
    assert ran.calls == 2


def test_an_unreachable_redis_never_fails_the_call(caplog: pytest.LogCaptureFixture) -> None:
    @cached(ttl_s=60, key=lambda: "k", backend="redis", redis_url="redis://127.0.0.1:1/0")
    def value() -> int:
        return 7

    assert value() == 7
    assert "Redis read failed" in caplog.text


def test_a_ttl_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        cached(ttl_s=0, key=lambda: "k")
