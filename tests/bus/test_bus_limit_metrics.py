"""The bus side of the call-semantics metrics, through a real server: a bus entry answered
-32004, and idempotent replays and refusals of the field ``idempotency_key``, read back from
``GET /metrics``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import redis

from tests.bus.test_bus_rpc import STREAM, receive
from tests.support import ServerProcess
from tests.test_limit_metrics import sample

ADD = json.dumps({"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 7})


def test_a_bus_entry_past_its_deadline_is_counted_under_bus(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    server = bus_server()
    deadline_ms = int(time.time() * 1000) - 1000  # passed, but its caller may still read
    raw.xadd(STREAM, {"data": ADD, "reply_to": "test:reply", "deadline_ms": deadline_ms})
    assert receive(raw)["error"]["code"] == -32004
    assert sample(server, "sbusr_calls_deadline_passed_total", transport="bus") == 1
    assert sample(server, "sbusr_calls_deadline_passed_total", transport="http") == 0


def test_bus_idempotent_replays_and_refusals_are_counted_under_bus(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    server = bus_server()
    for _ in range(2):
        raw.xadd(STREAM, {"data": ADD, "reply_to": "test:reply", "idempotency_key": "bus-1"})
        assert receive(raw)["result"] == 3
    other = json.dumps({"jsonrpc": "2.0", "method": "add", "params": [2, 2], "id": 8})
    raw.xadd(STREAM, {"data": other, "reply_to": "test:reply", "idempotency_key": "bus-1"})
    assert receive(raw)["error"]["code"] == -32600
    assert sample(server, "sbusr_idempotent_replays_total", transport="bus") == 1
    assert sample(server, "sbusr_idempotent_refusals_total", transport="bus") == 1
    assert sample(server, "sbusr_idempotent_replays_total", transport="http") == 0
