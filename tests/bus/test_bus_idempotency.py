"""Idempotency with Redis: the store every instance sees; the bus field ``idempotency_key``."""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.bus.test_bus_rpc import STREAM, receive
from tests.support import PROJECT_DIR, ServerProcess, in_background, wait_for
from tests.test_idempotency import ONCE_METHODS, gated_request, wait_until_waiting

COUNTER = "sbusr:demo:counter:idempotent"
INCR = json.dumps(
    {"jsonrpc": "2.0", "method": "demo_redis.incr", "params": ["idempotent"], "id": 7}
)


@pytest.fixture(autouse=True)
def counting_method(methods_dir: Path) -> None:
    """Serve ``demo_redis.incr`` (a Redis counter; an example, not a shipped method)."""
    shutil.copy(PROJECT_DIR / "examples" / "toolkit" / "demo_redis.py", methods_dir)


#: ``gated_servers(env)``: two servers on the test's Redis with ``once.py`` among their methods.
GatedServers = Callable[[dict[str, str]], tuple[ServerProcess, ServerProcess]]


@pytest.fixture
def gated_servers(
    start_server: Callable[..., ServerProcess], methods_dir: Path, redis_url: str
) -> GatedServers:
    shutil.copy(ONCE_METHODS, methods_dir / "once.py")

    def start(env: dict[str, str]) -> tuple[ServerProcess, ServerProcess]:
        both = {"SBUSR_REDIS_URL": redis_url, **env}
        return start_server(env=both), start_server(env=both)

    return start


def send_keyed(raw: redis.Redis, data: str, key: str, reply_to: str) -> None:
    raw.xadd(STREAM, {"data": data, "reply_to": reply_to, "idempotency_key": key})


def test_repeat_on_another_instance_gets_the_stored_response_and_runs_once(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    first, second = bus_server(), bus_server()
    answered = first.post(INCR, headers={"Idempotency-Key": "shared-1"})
    replayed = second.post(INCR, headers={"Idempotency-Key": "shared-1"})
    assert answered.json() == replayed.json() == {"jsonrpc": "2.0", "result": 1, "id": 7}
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert raw.get(COUNTER) == b"1"
    assert raw.ttl("sbusr:idempotency:shared-1") > 86000


def test_same_key_with_another_body_is_422_on_another_instance(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    first, second = bus_server(), bus_server()
    first.post(INCR, headers={"Idempotency-Key": "shared-2"})
    refused = second.post(
        INCR.replace('"id": 7', '"id": 8'), headers={"Idempotency-Key": "shared-2"}
    )
    assert refused.status_code == 422
    assert raw.get(COUNTER) == b"1"


def test_concurrent_duplicates_on_two_instances_run_once(
    gated_servers: GatedServers, tmp_path: Path
) -> None:
    first, second = gated_servers({})
    counter, gate = tmp_path / "runs.txt", tmp_path / "gate"
    body, headers = gated_request(counter, gate), {"Idempotency-Key": "racing"}
    running = in_background(first.post, body, headers)
    wait_for(counter.exists, message="the first call to run")
    waiting = in_background(second.post, body, headers)
    wait_until_waiting(second, "racing")
    gate.touch()
    answers = [running.result(timeout=30), waiting.result(timeout=30)]
    assert [answer.json()["result"] for answer in answers] == [1, 1]
    assert answers[1].headers["Idempotent-Replayed"] == "true"
    assert counter.read_text().splitlines() == ["ran"]


def test_bus_entries_with_the_same_key_run_once_and_each_gets_the_response(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    bus_server()
    send_keyed(raw, INCR, "bus-1", "test:first")
    assert receive(raw, "test:first") == {"jsonrpc": "2.0", "result": 1, "id": 7}
    send_keyed(raw, INCR, "bus-1", "test:second")
    assert receive(raw, "test:second") == {"jsonrpc": "2.0", "result": 1, "id": 7}
    assert raw.get(COUNTER) == b"1"


def test_bus_entry_with_a_used_key_and_other_data_gets_32600(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    bus_server()
    send_keyed(raw, INCR, "bus-2", "test:first")
    receive(raw, "test:first")
    other = INCR.replace('"id": 7', '"id": "other"')
    send_keyed(raw, other, "bus-2", "test:second")
    refused = receive(raw, "test:second")
    assert refused["id"] == "other" and refused["error"]["code"] == -32600
    assert refused["error"]["data"] == {"idempotency_key": "bus-2"}
    assert raw.get(COUNTER) == b"1"


def test_http_and_bus_share_the_keys(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    server = bus_server()
    server.post(INCR, headers={"Idempotency-Key": "both"})
    send_keyed(raw, INCR, "both", "test:reply")
    assert receive(raw) == {"jsonrpc": "2.0", "result": 1, "id": 7}
    assert raw.get(COUNTER) == b"1"


def test_the_claim_of_a_killed_instance_expires_and_a_duplicate_runs(
    gated_servers: GatedServers, tmp_path: Path
) -> None:
    doomed, survivor = gated_servers({"SBUSR_RPC_TIMEOUT": "2"})
    counter, gate = tmp_path / "runs.txt", tmp_path / "gate"
    body, headers = gated_request(counter, gate), {"Idempotency-Key": "orphaned"}
    in_background(doomed.post, body, headers)
    wait_for(counter.exists, message="the first call to run")
    doomed.stop(signal.SIGKILL)
    gate.touch()
    answer = survivor.post(body, headers=headers)
    assert answer.json() == {"jsonrpc": "2.0", "result": 2, "id": 1}
    assert "Idempotent-Replayed" not in answer.headers
