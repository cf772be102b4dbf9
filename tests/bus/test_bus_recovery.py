"""At-least-once delivery: a killed instance's call is answered by another; Redis restarts."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.bus.test_bus_rpc import GROUP, STREAM, receive, send
from tests.support import ServerProcess, free_port, wait_for


def running_calls(server: ServerProcess) -> int:
    return int(server.status()["in_flight"])


def test_call_of_killed_instance_is_answered_by_another(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    first = bus_server()
    send(raw, {"jsonrpc": "2.0", "method": "sleep", "params": [1.5], "id": "survivor"})
    wait_for(lambda: running_calls(first) == 1, message="the call to run on the first instance")
    first.stop(signal.SIGKILL)
    assert raw.xpending(STREAM, GROUP)["pending"] == 1
    bus_server(env={"SBUSR_CLAIM_IDLE_MS": "300"})
    assert receive(raw, timeout_s=20) == {"jsonrpc": "2.0", "result": 1.5, "id": "survivor"}
    wait_for(lambda: raw.xpending(STREAM, GROUP)["pending"] == 0, message="the entry to be acked")


def test_sigterm_answers_the_calls_in_flight(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    server = bus_server()
    send(raw, {"jsonrpc": "2.0", "method": "sleep", "params": [0.5], "id": 1})
    wait_for(lambda: running_calls(server) == 1, message="the call to run")
    assert server.stop(signal.SIGTERM) == 0
    assert receive(raw, timeout_s=1) == {"jsonrpc": "2.0", "result": 0.5, "id": 1}
    assert raw.xpending(STREAM, GROUP)["pending"] == 0


class RedisServer:
    """A private redis-server on a spare loopback port, without persistence."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        wait_for(lambda: self._ping(client), message="redis-server to start")
        client.close()

    @staticmethod
    def _ping(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.exceptions.ConnectionError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.fail("this test needs redis-server on PATH (apt-get install redis-server)")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def test_redis_restart_loses_nothing_and_logs_once(
    start_server: Callable[..., ServerProcess], own_redis: RedisServer
) -> None:
    client = redis.Redis(port=own_redis.port, socket_timeout=30)
    server = start_server(env={"SBUSR_REDIS_URL": f"redis://127.0.0.1:{own_redis.port}/0"})
    send(client, {"jsonrpc": "2.0", "method": "sleep", "params": [1.0], "id": "in-flight"})
    wait_for(lambda: running_calls(server) == 1, message="the call to run")
    own_redis.stop()
    assert server.call("add", [2, 3])["result"] == 5  # HTTP serves on while Redis is down
    wait_for(lambda: running_calls(server) == 0, message="the call to end")
    own_redis.start()
    client = redis.Redis(port=own_redis.port, socket_timeout=30)
    assert receive(client, timeout_s=20) == {"jsonrpc": "2.0", "result": 1.0, "id": "in-flight"}
    send(client, {"jsonrpc": "2.0", "method": "add", "params": [1, 1], "id": "after"})
    assert receive(client, timeout_s=20)["result"] == 2
    assert server.log().count("Redis unreachable") == 1, server.log()
    client.close()


def test_http_serves_when_redis_is_unreachable_at_start(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(env={"SBUSR_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert server.call("echo", ["up"])["result"] == "up"
    response = httpx.post(server.url + "/api/flow", json={"project": "p", "flow": "f"})
    assert response.status_code == 503, response.text
    wait_for(lambda: "Redis unreachable" in server.log(), message="the outage log line")
    assert json.loads(response.text)["error"]["code"] == 503
