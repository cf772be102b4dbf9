"""Bus entries held to the same limits as HTTP bodies, and replies kept to the sbusr keys."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import redis

from tests.bus.test_bus_rpc import DEAD, GROUP, STREAM, receive, send
from tests.support import ServerProcess, wait_for

HOSTILE = Path(__file__).parent.parent / "fixtures" / "hostile.py"


def nested_list(depth: int) -> str:
    """A JSON array nested ``depth`` deep, e.g. 2 -> ``[[0]]``."""
    return "[" * depth + "0" + "]" * depth


def acked(raw: redis.Redis) -> bool:
    pending: int = raw.xpending(STREAM, GROUP)["pending"]
    return pending == 0


def test_an_entry_over_the_body_limit_is_answered_not_run(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    server = bus_server(env={"SBUSR_MAX_BODY_BYTES": "1000"})
    send(raw, {"jsonrpc": "2.0", "method": "echo", "params": ["x" * 2000], "id": 1})
    answer = receive(raw)
    assert answer["error"]["code"] == -32600, answer
    assert answer["error"]["data"]["max_body_bytes"] == 1000
    assert answer["id"] is None
    wait_for(lambda: acked(raw), message="the entry to be acked")
    send(raw, {"jsonrpc": "2.0", "method": "echo", "params": ["x" * 900], "id": 2})
    assert receive(raw)["result"] == "x" * 900
    assert "over the limit of 1000" in server.log()


def test_params_too_deep_to_frame_are_invalid_params_and_acked(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    server = bus_server(env={"SBUSR_CLAIM_IDLE_MS": "500"})
    workers = {worker["pid"] for worker in server.status()["workers"]}
    params = nested_list(900)  # parses, but nested too deeply to frame for a worker
    send(raw, '{"jsonrpc": "2.0", "method": "echo", "params": [' + params + '], "id": 1}')
    answer = receive(raw)
    assert answer["error"]["code"] == -32602, answer
    wait_for(lambda: acked(raw), message="the entry to be acked")
    send(raw, {"jsonrpc": "2.0", "method": "echo", "params": ["after"], "id": 2})
    assert receive(raw)["result"] == "after"
    assert not raw.exists(DEAD)
    assert {worker["pid"] for worker in server.status()["workers"]} == workers
    assert server.status()["restarts"] == {}


def test_a_reply_to_naming_another_applications_key_is_never_written(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    """By default any reply list name works (design.md), but a key that exists without an
    expiry (here a task queue) is no reply list: it is not touched, the reply is dead-lettered."""
    bus_server()
    raw.rpush("celery", "a task")
    request = {"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": 1}
    send(raw, request, reply_to="celery")
    wait_for(lambda: raw.xlen(DEAD) == 1, message="the reply to be dead-lettered")
    assert raw.lrange("celery", 0, -1) == [b"a task"]
    assert raw.ttl("celery") == -1
    dead_entries = raw.xrange(DEAD)
    assert dead_entries and dead_entries[0][1] is not None
    reason = dead_entries[0][1][b"reason"]
    assert isinstance(reason, bytes) and b"without an expiry" in reason
    assert acked(raw)
    send(raw, request, reply_to="test:reply:any-name")
    assert receive(raw, "test:reply:any-name")["result"] == "x"


def test_a_reply_to_naming_a_key_that_expires_later_than_a_reply_list_is_never_written(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    """Another application's list with an expiry of its own (an hour) is no reply list either:
    pushing to it and cutting its life to SBUSR_NOTIFY_TTL_MS would lose its data."""
    bus_server()
    raw.rpush("jobs:queue", "a job")
    raw.expire("jobs:queue", 3600)
    request = {"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": 1}
    send(raw, request, reply_to="jobs:queue")
    wait_for(lambda: raw.xlen(DEAD) == 1, message="the reply to be dead-lettered")
    assert raw.lrange("jobs:queue", 0, -1) == [b"a job"]
    assert raw.ttl("jobs:queue") > 3000
    dead_entries = raw.xrange(DEAD)
    assert dead_entries and dead_entries[0][1] is not None
    reason = dead_entries[0][1][b"reason"]
    assert isinstance(reason, bytes) and b"expires later than a reply list would" in reason
    for number in (2, 3):  # a reply list, pushed to twice, stays one
        send(raw, {**request, "id": number}, reply_to="test:reply:twice")
    assert receive(raw, "test:reply:twice")["id"] == 2
    assert receive(raw, "test:reply:twice")["id"] == 3


def test_a_reply_to_outside_the_pattern_is_acked_and_not_run(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis, methods_dir: Path, tmp_path: Path
) -> None:
    shutil.copy(HOSTILE, methods_dir / "hostile.py")
    server = bus_server(env={"SBUSR_BUS_REPLY_TO_PATTERN": "sbusr:reply:*"})
    marker = tmp_path / "ran"
    request = {"jsonrpc": "2.0", "method": "hostile.touch", "params": [str(marker)], "id": 1}
    send(raw, request, reply_to="test:reply")
    wait_for(lambda: "does not match sbusr:reply:*" in server.log(), message="the refusal")
    wait_for(lambda: acked(raw), message="the entry to be acked")
    assert not raw.exists("test:reply")
    assert not marker.exists()
    send(raw, request, reply_to="sbusr:reply:test")
    assert receive(raw, "sbusr:reply:test")["result"] is True
    assert marker.exists()


def test_the_reply_to_pattern_is_a_setting(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    server = bus_server(env={"SBUSR_BUS_REPLY_TO_PATTERN": "app:repl[iy]*:*"})
    request = {"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": 1}
    send(raw, request, reply_to="sbusr:reply:test")
    wait_for(lambda: "does not match app:repl[iy]*:*" in server.log(), message="the refusal")
    send(raw, request, reply_to="app:replies:7")
    assert receive(raw, "app:replies:7")["result"] == "x"


def test_an_id_with_a_lone_surrogate_is_answered_and_acked(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    bus_server()
    send(raw, '{"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": "\\udc80"}')
    answer = receive(raw)
    assert answer["error"]["code"] == -32600, answer
    assert answer["id"] is None
    wait_for(lambda: acked(raw), message="the entry to be acked")
    assert not raw.exists(DEAD)
