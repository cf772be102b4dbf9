"""The JSON-RPC core over a real pool of workers (no HTTP): what the workers' answers become."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from executor.pool import Pool
from server.jsonrpc import JsonRpcCore


@pytest.fixture
async def pool(methods_dir: Path) -> AsyncIterator[Pool]:
    pool = Pool(methods_dir, processes=1, max_tasks_per_child=0, queue_maxsize=3)
    await pool.start()
    yield pool
    await pool.shutdown(5)


@pytest.fixture
def core(pool: Pool) -> JsonRpcCore:
    return JsonRpcCore(pool, timeout_s=10, max_batch=4)


async def answer(core: JsonRpcCore, payload: Any) -> Any:
    reply = await core.handle(payload if isinstance(payload, (str, bytes)) else json.dumps(payload))
    return None if reply.body is None else json.loads(reply.body)


@pytest.mark.parametrize("request_id", ["abc", "", 0, -7, 2**70, 1.5, -0.25, None])
async def test_ids_are_echoed_exactly(core: JsonRpcCore, request_id: Any) -> None:
    response = await answer(
        core, {"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": request_id}
    )
    assert response == {"jsonrpc": "2.0", "result": "x", "id": request_id}
    assert type(response["id"]) is type(request_id)


async def test_null_result_is_a_result(core: JsonRpcCore) -> None:
    response = await answer(core, {"jsonrpc": "2.0", "method": "warnlog", "params": ["m"], "id": 1})
    assert response == {"jsonrpc": "2.0", "result": None, "id": 1}


async def test_batch_answers_in_request_order(core: JsonRpcCore) -> None:
    batch = [{"jsonrpc": "2.0", "method": "echo", "params": [i], "id": i} for i in range(4)]
    assert [item["result"] for item in await answer(core, batch)] == [0, 1, 2, 3]


async def test_rpc_names_are_reserved(core: JsonRpcCore) -> None:
    response = await answer(core, {"jsonrpc": "2.0", "method": "rpc.ping", "id": 1})
    assert response["error"]["code"] == -32601


async def test_unicode_round_trip(core: JsonRpcCore) -> None:
    text = "héllo ✓ 日本"
    response = await answer(core, {"jsonrpc": "2.0", "method": "echo", "params": [text], "id": "é"})
    assert response == {"jsonrpc": "2.0", "result": text, "id": "é"}


async def test_method_error_of_its_own_code(core: JsonRpcCore) -> None:
    response = await answer(
        core, {"jsonrpc": "2.0", "method": "greetings.refuse", "params": ["Al"], "id": 1}
    )
    assert response["error"] == {
        "code": 4004,
        "message": "no greeting for Al",
        "data": {"name": "Al"},
    }


async def test_method_raising_gives_type_and_message_without_traceback(core: JsonRpcCore) -> None:
    response = await answer(
        core, {"jsonrpc": "2.0", "method": "exception", "params": ["boom"], "id": 1}
    )
    assert response["error"]["code"] == -32000
    assert response["error"]["data"] == {"type": "RuntimeError", "message": "boom"}


async def test_full_queue_refuses_whole_payload(core: JsonRpcCore, pool: Pool) -> None:
    sleeper = asyncio.ensure_future(
        core.handle(json.dumps({"jsonrpc": "2.0", "method": "sleep", "params": [0.5], "id": 0}))
    )
    await asyncio.sleep(0)
    waiting = [
        asyncio.ensure_future(
            core.handle(json.dumps({"jsonrpc": "2.0", "method": "echo", "params": [i], "id": i}))
        )
        for i in range(3)
    ]
    await asyncio.sleep(0)
    assert pool.queue_depth == 3
    refused = await core.handle(
        json.dumps(
            [
                {"jsonrpc": "2.0", "method": "echo", "params": [9], "id": 9},
                {"jsonrpc": "2.0", "method": "echo", "params": [10]},
            ]
        )
    )
    assert refused.busy
    assert refused.body is not None
    body = json.loads(refused.body)
    assert [item["error"]["code"] for item in body] == [-32003]
    assert body[0]["id"] == 9
    notification = await core.handle(
        json.dumps({"jsonrpc": "2.0", "method": "echo", "params": [1]})
    )
    assert notification.busy and notification.body is not None
    assert json.loads(notification.body)["error"]["code"] == -32003
    answers = []
    for task in [sleeper, *waiting]:
        reply = await task
        assert reply.body is not None
        answers.append(json.loads(reply.body))
    assert [item["result"] for item in answers] == [0.5, 0, 1, 2]
