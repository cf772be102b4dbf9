"""Fixtures of the bus tests: a real Redis (127.0.0.1:6379), one database of this run's own.

The session takes the first empty database among ``SBUSR_TEST_BUS_REDIS_DBS`` (default
``1-15``; the dbs of the toolkit and scheduler tests, ``KIT_TEST_REDIS_URL`` and
``SBUSR_TEST_REDIS_URL``, are skipped) and marks it with the key ``sbusr-test:owner`` (so
parallel runs pick different ones); a db that holds only the mark of a run that has ended counts
as empty. Every test starts on a flushed database; the database is flushed again at the end.
No Redis: the tests fail and say so. See tests/README.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
import redis

from tests.support import OWNER_KEY, ServerProcess, copy_methods, live_other_run, owner_mark

REDIS_HOST_PORT = os.environ.get("SBUSR_TEST_REDIS", "127.0.0.1:6379")
#: the Redis dbs the bus tests may take, e.g. "1-15" or "3,4,7-9"
BUS_DBS = os.environ.get("SBUSR_TEST_BUS_REDIS_DBS", "1-15")


def _db_numbers(text: str) -> list[int]:
    """``"1-3,7"`` -> ``[1, 2, 3, 7]``, without the dbs of the other tests."""
    numbers: list[int] = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        numbers.extend(range(int(first), int(last or first) + 1))
    taken = set()
    for variable, default in (
        ("KIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/11"),
        ("SBUSR_TEST_REDIS_URL", "redis://127.0.0.1:6379/13"),
    ):
        path = os.environ.get(variable, default).rsplit("/", 1)[-1]
        if path.isdigit():
            taken.add(int(path))
    return [number for number in numbers if number not in taken]


def _take(client: redis.Redis) -> bool:
    """Mark the db as this run's when it is empty, or holds only the mark of an ended run."""
    size = client.dbsize()
    if size == 0:
        return bool(client.set(OWNER_KEY, owner_mark(), nx=True))
    owner = client.get(OWNER_KEY)
    if size == 1 and isinstance(owner, bytes) and not live_other_run(owner.decode()):
        return bool(client.set(OWNER_KEY, owner_mark()))
    return False


def _claim_database() -> int:
    host, _, port = REDIS_HOST_PORT.partition(":")
    for number in _db_numbers(BUS_DBS):
        client = redis.Redis(host=host, port=int(port), db=number)
        try:
            if _take(client):
                return number
        except redis.exceptions.ConnectionError as exc:
            pytest.fail(
                f"the bus tests need a real Redis at {REDIS_HOST_PORT} (SBUSR_TEST_REDIS): {exc}",
                pytrace=False,
            )
        finally:
            client.close()
    pytest.fail(
        f"no empty Redis database among {BUS_DBS} at {REDIS_HOST_PORT} for the bus tests "
        "(SBUSR_TEST_BUS_REDIS_DBS)",
        pytrace=False,
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
    client.set(OWNER_KEY, owner_mark())
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
