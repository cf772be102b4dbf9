"""The toolkit under a worker's concurrency, end to end: many calls at once in ONE worker share
its HTTP clients, database engine, Redis pool and locks safely.

One worker (``SBUSR_POOL_PROCESSES=1``) runs a batch of calls at once: plain methods in its
threads, ``async def`` methods as tasks on its loop. Each call reports which client object it
used, so the tests see one shared client per worker (per loop for ``aiorequests``), and the
results show no call saw another's data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.kit.conftest import ScriptedServer
from tests.support import ServerProcess, StartServer

CALLS = 40

METHODS = '''
import asyncio
import threading
import time

import sqlalchemy as sa

from kit import aiorequests, get_engine, get_redis, lock, requests, session_scope

_running = 0
_peak = 0
_guard = threading.Lock()


def _enter():
    global _running, _peak
    with _guard:
        _running += 1
        _peak = max(_peak, _running)


def _leave():
    global _running
    with _guard:
        _running -= 1


def fetch(url):
    """A blocking GET through the shared client, from one of the worker's threads."""
    _enter()
    try:
        response = requests.get(url)
        return {"status": response.status_code, "client": id(requests._client())}
    finally:
        _leave()


async def afetch(url):
    """An async GET through the shared AsyncClient of the worker's loop."""
    response = await aiorequests.get(url)
    return {"status": response.status_code, "client": id(aiorequests._client())}


def store(url, table, number):
    """Insert one row in a session of its own, then read it back in the same session."""
    _enter()
    try:
        with session_scope(url) as session:
            session.execute(sa.text(f"INSERT INTO {table} (n) VALUES (:n)"), {"n": number})
            time.sleep(0.05)  # overlap with the other calls while holding the connection
            seen = session.execute(
                sa.text(f"SELECT n FROM {table} WHERE n = :n"), {"n": number}
            ).scalar_one()
        return {"seen": seen, "engine": id(get_engine(url))}
    finally:
        _leave()


def count(redis_url, key):
    """INCR through the shared Redis pool."""
    client = get_redis(redis_url)
    return {"value": client.incr(key), "client": id(client)}


def locked_increment(redis_url, name, key):
    """Read-modify-write a Redis value under kit.lock: never two at once."""
    client = get_redis(redis_url)
    with lock(name, ttl_s=10, blocking_timeout_s=30, client=client):
        value = int(client.get(key) or 0)
        time.sleep(0.01)
        client.set(key, value + 1)
    return value + 1


def peak():
    return _peak
'''


@pytest.fixture
def kit_server(start_server: StartServer, methods_dir: Path) -> ServerProcess:
    (methods_dir / "kitconc.py").write_text(METHODS)
    return start_server(env={"SBUSR_POOL_PROCESSES": "1"})


def _batch(server: ServerProcess, method: str, params: list[list[Any]]) -> list[Any]:
    """Send one batch (one call per params list) and return the results in request order."""
    body = [
        {"jsonrpc": "2.0", "method": method, "params": call_params, "id": number}
        for number, call_params in enumerate(params)
    ]
    replies = {reply["id"]: reply for reply in server.post(body).json()}
    assert all("result" in reply for reply in replies.values()), (replies, server.log())
    return [replies[number]["result"] for number in range(len(params))]


def test_http_clients_are_shared_by_threads_and_tasks(
    kit_server: ServerProcess, http_server: ScriptedServer
) -> None:
    blocking = _batch(kit_server, "kitconc.fetch", [[http_server.url("/ok")]] * CALLS)
    assert {result["status"] for result in blocking} == {200}
    assert len({result["client"] for result in blocking}) == 1  # one Client per worker

    asynchronous = _batch(kit_server, "kitconc.afetch", [[http_server.url("/ok")]] * CALLS)
    assert {result["status"] for result in asynchronous} == {200}
    assert len({result["client"] for result in asynchronous}) == 1  # one per worker loop


@pytest.mark.parametrize("database", ["mariadb", "postgres"])
def test_database_sessions_are_per_call_on_one_engine(
    kit_server: ServerProcess,
    database: str,
    request: pytest.FixtureRequest,
    table_name: str,
) -> None:
    url: str = request.getfixturevalue(f"{database}_url")
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE TABLE {table_name} (n INTEGER)"))
    try:
        results = _batch(kit_server, "kitconc.store", [[url, table_name, n] for n in range(CALLS)])
        assert [result["seen"] for result in results] == list(range(CALLS))
        assert len({result["engine"] for result in results}) == 1
        assert kit_server.call("kitconc.peak")["result"] > 1  # the sessions did overlap
        with engine.connect() as connection:
            stored = connection.execute(sa.text(f"SELECT n FROM {table_name} ORDER BY n"))
            assert [row[0] for row in stored] == list(range(CALLS))
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP TABLE {table_name}"))
        engine.dispose()


def test_redis_pool_and_lock_hold_under_concurrency(
    kit_server: ServerProcess, redis_url: str
) -> None:
    counts = _batch(kit_server, "kitconc.count", [[redis_url, "kitconc:counter"]] * CALLS)
    assert sorted(result["value"] for result in counts) == list(range(1, CALLS + 1))
    assert len({result["client"] for result in counts}) == 1

    increments = _batch(
        kit_server, "kitconc.locked_increment", [[redis_url, "kitconc", "kitconc:n"]] * 20
    )
    assert sorted(increments) == list(range(1, 21))  # no lost update: the lock held
