"""kit.lock against the real Redis (db 11): two holders, expiry, renewal, owner-only release."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import redis

from kit.errors import KitError, LockLost, LockNotAcquired
from kit.lock import lock
from tests.support import wait_for


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    from kit.redis import get_redis

    return get_redis(redis_url)


def test_a_second_non_blocking_holder_fails_at_once(client: redis.Redis) -> None:
    with lock("job", ttl_s=5, client=client):
        started = time.monotonic()
        with pytest.raises(LockNotAcquired), lock("job", ttl_s=5, blocking=False, client=client):
            pass
        assert time.monotonic() - started < 1.0
    with lock("job", ttl_s=5, blocking=False, client=client) as second:
        assert second.held


def test_a_second_blocking_holder_gives_up_after_its_timeout(client: redis.Redis) -> None:
    with lock("job", ttl_s=5, client=client):
        started = time.monotonic()
        with pytest.raises(LockNotAcquired) as info:
            lock("job", ttl_s=5, blocking_timeout_s=0.2, client=client).acquire()
        assert 0.15 <= time.monotonic() - started < 3.0
    assert isinstance(info.value, KitError)


def test_a_second_blocking_holder_gets_the_lock_when_released(client: redis.Redis) -> None:
    first = lock("job", ttl_s=5, client=client)
    first.acquire()
    acquired = threading.Event()

    def second_holder() -> None:
        with lock("job", ttl_s=5, blocking_timeout_s=5, client=client):
            acquired.set()

    thread = threading.Thread(target=second_holder)
    thread.start()
    assert not acquired.wait(0.2)  # still blocked while the first holds it
    first.release()
    wait_for(acquired.is_set, message="second holder to acquire")
    thread.join()


def test_without_renewal_the_lock_expires_after_ttl(client: redis.Redis) -> None:
    first = lock("job", ttl_s=0.3, renew=False, client=client)
    first.acquire()
    wait_for(lambda: not client.exists("sbusr:lock:job"), message="lock key to expire")
    with lock("job", ttl_s=5, blocking=False, client=client) as second:
        assert second.held
    assert first.held  # from its own point of view; its release will say it was lost


def test_release_never_deletes_another_holders_lock(client: redis.Redis) -> None:
    first = lock("job", ttl_s=0.3, renew=False, client=client)
    first.acquire()
    wait_for(lambda: not client.exists("sbusr:lock:job"), message="lock key to expire")
    second = lock("job", ttl_s=5, blocking=False, client=client)
    second.acquire()
    token = client.get("sbusr:lock:job")
    with pytest.raises(LockLost):
        first.release()
    assert client.get("sbusr:lock:job") == token
    second.release()
    assert not client.exists("sbusr:lock:job")


def test_renewal_keeps_a_long_holders_lock_past_its_ttl(client: redis.Redis) -> None:
    ttl_s = 0.3
    with lock("job", ttl_s=ttl_s, client=client) as held:
        started = time.monotonic()
        # Poll for 4 x ttl: the key must never lapse and nobody else may take it.
        while time.monotonic() - started < 4 * ttl_s:
            assert client.pttl("sbusr:lock:job") > 0
            with pytest.raises(LockNotAcquired):
                lock("job", ttl_s=ttl_s, blocking=False, client=client).acquire()
        assert not held.lost
    assert not client.exists("sbusr:lock:job")


def test_an_error_in_the_block_releases_the_lock(client: redis.Redis) -> None:
    with pytest.raises(ZeroDivisionError), lock("job", ttl_s=5, client=client):
        raise ZeroDivisionError
    assert not client.exists("sbusr:lock:job")


def test_decorator_makes_concurrent_calls_exclusive(client: redis.Redis) -> None:
    inside: list[int] = []
    overlaps: list[list[int]] = []

    @lock("decorated", ttl_s=5, client=client)
    def critical(n: int) -> int:
        inside.append(n)
        if len(inside) > 1:
            overlaps.append(list(inside))
        assert client.exists("sbusr:lock:decorated")
        time.sleep(0.02)  # hold briefly so a second caller would overlap if it could
        inside.remove(n)
        return n * 2

    results: list[int] = []
    threads = [threading.Thread(target=lambda n=n: results.append(critical(n))) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 2, 4, 6]
    assert overlaps == []
    assert critical.__name__ == "critical"


def test_decorator_on_a_coroutine_function(client: redis.Redis) -> None:
    @lock("async-job", ttl_s=5, client=client)
    async def work() -> bool:
        return bool(client.exists("sbusr:lock:async-job"))

    assert asyncio.run(work()) is True
    assert not client.exists("sbusr:lock:async-job")


def test_lock_uses_the_default_redis_from_the_environment(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SBUSR_REDIS_URL", redis_url)
    with lock("env-job", ttl_s=5):
        assert redis.Redis.from_url(redis_url).exists("sbusr:lock:env-job")


def test_lock_keys_take_the_bus_prefix_of_the_settings(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SBUSR_BUS_PREFIX", "tenant7")
    with lock("prefixed", ttl_s=5, client=client) as held:
        assert held.key == "tenant7:lock:prefixed"
        assert client.exists("tenant7:lock:prefixed")


def test_an_explicit_key_prefix_replaces_the_default(client: redis.Redis) -> None:
    with lock("own", ttl_s=5, client=client, key_prefix="app:locks:") as held:
        assert client.exists("app:locks:own")
        with pytest.raises(LockNotAcquired):
            lock("own", ttl_s=5, client=client, key_prefix="app:locks:", blocking=False).acquire()
    assert not held.held and not client.exists("app:locks:own")


def test_invalid_ttl_is_refused() -> None:
    with pytest.raises(ValueError):
        lock("x", ttl_s=0)


def test_decorated_coroutine_that_raises_releases_the_lock(client: redis.Redis) -> None:
    @lock("async-fail", ttl_s=5, client=client)
    async def fail() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        asyncio.run(fail())
    assert not client.exists("sbusr:lock:async-fail")
