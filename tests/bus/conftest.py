"""Fixtures of the bus tests: a real Redis (127.0.0.1:6379), one database of this run's own.

The session takes the first empty database among 1..15 and marks it with the key
``sbusr-test:owner`` (so parallel runs pick different ones); every test starts on a flushed
database; the database is flushed again at the end. No Redis: the tests fail and say so.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
import redis

from tests.support import ServerProcess, copy_methods

REDIS_HOST_PORT = os.environ.get("SBUSR_TEST_REDIS", "127.0.0.1:6379")
OWNER_KEY = "sbusr-test:owner"


def _claim_database() -> int:
    host, _, port = REDIS_HOST_PORT.partition(":")
    for number in range(1, 16):
        client = redis.Redis(host=host, port=int(port), db=number)
        try:
            if client.dbsize() == 0 and client.set(OWNER_KEY, os.getpid(), nx=True):
                return number
        except redis.exceptions.ConnectionError as exc:
            pytest.fail(
                f"the bus tests need a real Redis at {REDIS_HOST_PORT} (SBUSR_TEST_REDIS): {exc}",
                pytrace=False,
            )
        finally:
            client.close()
    pytest.fail(
        f"no empty Redis database among 1..15 at {REDIS_HOST_PORT} for the bus tests", pytrace=False
    )


@pytest.fixture(scope="session")
def redis_database() -> Iterator[str]:
    """URL of this run's own Redis database, e.g. ``redis://127.0.0.1:6379/3``."""
    url = f"redis://{REDIS_HOST_PORT}/{_claim_database()}"
    yield url
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def flush(url: str) -> None:
    """Empty the database of ``url`` and mark it as taken again."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.set(OWNER_KEY, os.getpid())
    client.close()


@pytest.fixture
def redis_url(redis_database: str) -> str:
    """This run's Redis database, flushed for this test."""
    flush(redis_database)
    return redis_database


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """A plain redis-py client on the test database (not our client library)."""
    client = redis.Redis.from_url(redis_url, socket_timeout=30)
    yield client
    client.close()


@pytest.fixture
def bus_server(
    start_server: Callable[..., ServerProcess], redis_url: str
) -> Callable[..., ServerProcess]:
    """Factory: ``bus_server(env={...})`` -> a server with the bus on the test database."""

    def start(env: dict[str, str] | None = None, **kwargs: object) -> ServerProcess:
        return start_server(env={"SBUSR_REDIS_URL": redis_url, **(env or {})}, **kwargs)

    return start


@pytest.fixture(scope="module")
def shared_bus(
    redis_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, str]]:
    """One bus server for a whole module (tests that do not disturb each other):
    ``(server, redis_url)``; the database is flushed before it starts."""
    flush(redis_database)
    folder = tmp_path_factory.mktemp("shared-bus")
    server = ServerProcess(
        copy_methods(folder / "methods"),
        folder / "server.log",
        env={"SBUSR_REDIS_URL": redis_database, "SBUSR_FLOW_ACK_TIMEOUT": "1"},
    )
    yield server, redis_database
    server.stop()
