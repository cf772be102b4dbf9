"""The Python client library (BusClient, AsyncBusClient) against a real server."""

from __future__ import annotations

import asyncio

import pytest

from busclient import AsyncBusClient, BusClient, BusTimeout, RpcError
from tests.support import ServerProcess
from wire.errors import JsonRpcError


@pytest.fixture
def bus_url(shared_bus: tuple[ServerProcess, str]) -> str:
    return shared_bus[1]


def test_sync_call_returns_the_result(bus_url: str) -> None:
    with BusClient(bus_url) as bus:
        assert bus.call("add", [1, 2], timeout_s=10) == 3
        assert bus.call("mymodule.MyClass.mymethod", {"name": "bus"}, timeout_s=10) == "hello, bus"


def test_sync_error_is_a_typed_exception(bus_url: str) -> None:
    with BusClient(bus_url) as bus, pytest.raises(RpcError) as raised:
        bus.call("exception", ["boom"], timeout_s=10)
    assert isinstance(raised.value, JsonRpcError)
    assert raised.value.code == -32000 and raised.value.data["type"] == "RuntimeError"


def test_sync_timeout(bus_url: str) -> None:
    with BusClient(bus_url) as bus, pytest.raises(BusTimeout):
        bus.call("sleep", [1], timeout_s=0.2)


def test_sync_batch_and_notify(bus_url: str) -> None:
    with BusClient(bus_url) as bus:
        bus.notify("echo", ["ignored"])
        outcomes = bus.batch([("echo", ["a"]), ("no.such", None), ("add", [2, 2])], timeout_s=10)
    assert outcomes[0] == "a" and outcomes[2] == 4
    assert isinstance(outcomes[1], RpcError) and outcomes[1].code == -32601


def test_sync_client_is_shared_by_threads(bus_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with BusClient(bus_url) as bus, ThreadPoolExecutor(16) as threads:
        results = list(threads.map(lambda n: bus.call("echo", [n], timeout_s=20), range(200)))
    assert results == list(range(200))


def test_late_reply_is_dropped_and_the_next_call_gets_its_own(bus_url: str) -> None:
    with BusClient(bus_url) as bus:
        with pytest.raises(BusTimeout):
            bus.call("sleep", [0.3], timeout_s=0.05)
        assert bus.call("echo", ["mine"], timeout_s=10) == "mine"


async def test_async_calls_share_two_connections(bus_url: str) -> None:
    async with AsyncBusClient(bus_url) as bus:
        results = await asyncio.gather(*(bus.call("echo", [n], timeout_s=30) for n in range(1000)))
        assert results == list(range(1000))
        in_use = bus._redis.connection_pool._in_use_connections | set(
            bus._redis.connection_pool._available_connections
        )
        assert len(in_use) <= 1


async def test_async_error_timeout_batch(bus_url: str) -> None:
    async with AsyncBusClient(bus_url) as bus:
        with pytest.raises(RpcError) as raised:
            await bus.call("no.such")
        assert raised.value.code == -32601
        with pytest.raises(BusTimeout):
            await bus.call("sleep", [1], timeout_s=0.2)
        await bus.notify("echo", ["x"])
        assert await bus.batch([("echo", ["b"]), ("add", [1, 1])]) == ["b", 2]


def test_password_never_in_repr() -> None:
    bus = BusClient("redis://:s3cret@127.0.0.1:1/0")
    assert "s3cret" not in repr(bus) and "***" in repr(bus)
    bus.close()
