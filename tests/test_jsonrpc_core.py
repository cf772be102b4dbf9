"""The transport-free JSON-RPC core against a real pool of workers (no HTTP)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from executor.pool import Pool
from server.jsonrpc import JsonRpcCore


@pytest.fixture
async def pool(methods_dir: Path):
    pool = Pool(methods_dir, processes=1, max_tasks_per_child=0, queue_maxsize=3)
    await pool.start()
    yield pool
    await pool.shutdown(5)


@pytest.fixture
def core(pool: Pool) -> JsonRpcCore:
    return JsonRpcCore(pool, timeout_s=10, max_batch=4)


async def answer(core: JsonRpcCore, payload) -> object:
    reply = await core.handle(payload if isinstance(payload, (str, bytes)) else json.dumps(payload))
    return None if reply.body is None else json.loads(reply.body)


@pytest.mark.parametrize("request_id", ["abc", "", 0, -7, 2**70, 1.5, -0.25, None])
async def test_ids_are_echoed_exactly(core, request_id):
    response = await answer(
        core, {"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": request_id}
    )
    assert response == {"jsonrpc": "2.0", "result": "x", "id": request_id}
    assert type(response["id"]) is type(request_id)


async def test_null_result_is_a_result(core):
    response = await answer(core, {"jsonrpc": "2.0", "method": "warnlog", "params": ["m"], "id": 1})
    assert response == {"jsonrpc": "2.0", "result": None, "id": 1}


@pytest.mark.parametrize(
    "request_object, keeps_id",
    [
        ({"jsonrpc": "2.0", "method": "echo", "id": True}, False),
        ({"jsonrpc": "2.0", "method": "echo", "id": [1]}, False),
        ({"jsonrpc": "2.0", "method": "echo", "id": {"a": 1}}, False),
        ({"jsonrpc": "1.0", "method": "echo", "id": 5}, True),
        ({"method": "echo", "id": 5}, True),
        ({"jsonrpc": 2.0, "method": "echo", "id": 5}, True),
        ({"jsonrpc": "2.0", "method": None, "id": 5}, True),
        ({"jsonrpc": "2.0", "id": 5}, True),
        ({"jsonrpc": "2.0", "method": "echo", "params": None, "id": 5}, True),
        ({"jsonrpc": "2.0", "method": "echo", "params": "x", "id": 5}, True),
        ({"jsonrpc": "2.0", "method": "echo", "params": 3, "id": 5}, True),
    ],
)
async def test_invalid_request_objects(core, request_object, keeps_id):
    response = await answer(core, request_object)
    assert response["error"]["code"] == -32600
    assert response["id"] == (5 if keeps_id else None)
    assert "message" in response["error"]["data"]


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe", b"nul", b'{"a":1}}'])
async def test_bodies_that_are_not_json_are_parse_errors(core, body):
    response = await answer(core, body)
    assert response["error"]["code"] == -32700 and response["id"] is None


@pytest.mark.parametrize("body", [b"1", b'"text"', b"null", b"true"])
async def test_json_that_is_not_an_object_is_an_invalid_request(core, body):
    response = await answer(core, body)
    assert response["error"]["code"] == -32600 and response["id"] is None


async def test_batch_over_the_limit_gets_one_error(core):
    batch = [{"jsonrpc": "2.0", "method": "echo", "params": [i], "id": i} for i in range(5)]
    response = await answer(core, batch)
    assert isinstance(response, dict)
    assert response["error"]["code"] == -32600
    assert "limit of 4" in response["error"]["data"]["message"]


async def test_batch_answers_in_request_order(core):
    batch = [{"jsonrpc": "2.0", "method": "echo", "params": [i], "id": i} for i in range(4)]
    assert [item["result"] for item in await answer(core, batch)] == [0, 1, 2, 3]


async def test_rpc_names_are_reserved(core):
    response = await answer(core, {"jsonrpc": "2.0", "method": "rpc.ping", "id": 1})
    assert response["error"]["code"] == -32601


async def test_unicode_round_trip(core):
    text = "héllo ✓ 日本"
    response = await answer(core, {"jsonrpc": "2.0", "method": "echo", "params": [text], "id": "é"})
    assert response == {"jsonrpc": "2.0", "result": text, "id": "é"}


async def test_method_error_of_its_own_code(core):
    response = await answer(
        core, {"jsonrpc": "2.0", "method": "greetings.refuse", "params": ["Al"], "id": 1}
    )
    assert response["error"] == {
        "code": 4004,
        "message": "no greeting for Al",
        "data": {"name": "Al"},
    }


async def test_method_raising_gives_type_and_message_without_traceback(core):
    response = await answer(
        core, {"jsonrpc": "2.0", "method": "exception", "params": ["boom"], "id": 1}
    )
    assert response["error"]["code"] == -32000
    assert response["error"]["data"] == {"type": "RuntimeError", "message": "boom"}


async def test_full_queue_refuses_whole_payload(core, pool):
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
    body = json.loads(refused.body)
    assert [item["error"]["code"] for item in body] == [-32003]
    assert body[0]["id"] == 9
    notification = await core.handle(
        json.dumps({"jsonrpc": "2.0", "method": "echo", "params": [1]})
    )
    assert notification.busy and json.loads(notification.body)["error"]["code"] == -32003
    answers = [json.loads((await task).body) for task in [sleeper, *waiting]]
    assert [item["result"] for item in answers] == [0.5, 0, 1, 2]


@pytest.mark.parametrize(
    "body",
    [
        '{"jsonrpc":"2.0","method":"echo","params":["x"],"id":NaN}',
        '{"jsonrpc":"2.0","method":"echo","params":[Infinity],"id":1}',
        '{"jsonrpc":"2.0","method":"echo","params":[-Infinity],"id":1}',
        '{"jsonrpc":"2.0","method":"echo","params":["x"],"id":1e400}',
        "[" * 100_000,
    ],
)
async def test_what_is_not_strict_json_is_a_parse_error(core, body):
    response = await answer(core, body)
    assert response["error"]["code"] == -32700 and response["id"] is None
