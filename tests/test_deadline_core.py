"""Deadlines and withdrawal in the transport-free JSON-RPC core: a passed deadline runs
nothing, a future one travels with every call of the payload, and a caller that leaves
withdraws its calls from the sink."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from executor.pool import Call
from server.jsonrpc import JsonRpcCore
from wire.deadline import deadline_from_timeout_ms, parse_deadline_ms


class HoldingSink:
    """A call sink that keeps every call unanswered and records withdrawals."""

    queue_maxsize = 10

    def __init__(self) -> None:
        self.submitted: list[Call] = []
        self.withdrawn: list[Call] = []

    def submit(self, calls: list[Call]) -> bool:
        self.submitted.extend(calls)
        return True

    def withdraw(self, calls: list[Call]) -> int:
        self.withdrawn.extend(calls)
        return len(calls)


@pytest.fixture
def sink() -> HoldingSink:
    return HoldingSink()


@pytest.fixture
def core(sink: HoldingSink) -> JsonRpcCore:
    return JsonRpcCore(sink, timeout_s=5.0, max_batch=10)


BATCH = json.dumps(
    [
        {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 1},
        {"jsonrpc": "2.0", "method": "echo", "params": ["x"]},
        {"jsonrpc": "2.0", "method": "echo", "params": ["y"], "id": 2},
    ]
)


async def test_a_passed_deadline_answers_every_request_32004_and_submits_nothing(
    core: JsonRpcCore, sink: HoldingSink
) -> None:
    deadline_ms = time.time() * 1000.0 - 250.0
    reply = await asyncio.wait_for(core.handle(BATCH, None, deadline_ms), 5.0)
    assert reply.body is not None
    responses = json.loads(reply.body)
    assert [response["id"] for response in responses] == [1, 2]  # the notification: nothing
    for response in responses:
        assert response["error"]["code"] == -32004
        assert response["error"]["data"]["missed_by_ms"] >= 250
    assert sink.submitted == []


async def test_a_future_deadline_travels_with_every_call_of_the_batch(
    core: JsonRpcCore, sink: HoldingSink
) -> None:
    deadline_ms = time.time() * 1000.0 + 60_000.0
    task = asyncio.create_task(core.handle(BATCH, {"request_id": "r1"}, deadline_ms))
    await asyncio.sleep(0)  # handle() submits before its first suspension
    assert [call.deadline_ms for call in sink.submitted] == [deadline_ms] * 3
    assert [call.context for call in sink.submitted] == [
        {"request_id": "r1", "deadline_ms": deadline_ms}
    ] * 3
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cancelling_the_handling_withdraws_its_calls(
    core: JsonRpcCore, sink: HoldingSink
) -> None:
    task = asyncio.create_task(core.handle(BATCH))
    await asyncio.sleep(0)
    assert len(sink.submitted) == 3
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sink.withdrawn == sink.submitted


@pytest.mark.parametrize("text", ["", "soon", "-1", "nan", "inf", "1e999"])
def test_a_bad_timeout_or_deadline_is_refused_with_a_message(text: str) -> None:
    with pytest.raises(ValueError, match="X-Timeout-Ms"):
        deadline_from_timeout_ms(text, 1000.0)
    with pytest.raises(ValueError, match="deadline_ms"):
        parse_deadline_ms(text.encode())


def test_a_timeout_counts_from_arrival() -> None:
    assert deadline_from_timeout_ms("250", 1000.0) == 1250.0
    assert deadline_from_timeout_ms(b" 0.5 ", 1000.0) == 1000.5
    assert parse_deadline_ms(b"1700000000000") == 1700000000000.0


async def test_an_answer_that_arrives_after_the_caller_left_is_dropped_quietly(
    core: JsonRpcCore, sink: HoldingSink
) -> None:
    task = asyncio.create_task(core.handle(BATCH))
    await asyncio.sleep(0)
    task.cancel()  # the caller leaves; answers already on their way still arrive
    for call in sink.submitted:
        call.on_done(True, b"3")
    with pytest.raises(asyncio.CancelledError):
        await task
