"""The transport-free JSON-RPC core against a fake call sink: no worker process, no HTTP.

The fake answers each call it accepts on a later turn of the event loop, in the reverse order
of submission, so that a batch whose calls finish out of order shows the core's own ordering.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from executor.pool import Call
from server.jsonrpc import CallSink, JsonRpcCore, Reply
from wire.codec import encode_compact
from wire.errors import JsonRpcError

#: A reply takes a few turns of the loop; past this the test fails instead of hanging.
ANSWER_TIMEOUT_S = 5.0
OWN_ERROR = {"code": 4004, "message": "no greeting", "data": {"name": "Al"}}


class FakeSink:
    """A :class:`CallSink` without workers: ``refuse`` answers :data:`OWN_ERROR`, ``nothing``
    null, any other method its first positional param (or its params when there is none);
    ``accepting = False`` refuses every call."""

    def __init__(self, queue_maxsize: int = 3) -> None:
        self.queue_maxsize = queue_maxsize
        self.accepting = True
        self.submitted: list[Call] = []

    def submit(self, calls: list[Call]) -> bool:
        if not self.accepting:
            return False
        self.submitted.extend(calls)
        loop = asyncio.get_running_loop()
        for call in reversed(calls):
            loop.call_soon(self._answer, call)
        return True

    def withdraw(self, calls: list[Call]) -> int:
        return 0

    @staticmethod
    def _answer(call: Call) -> None:
        if call.method == "refuse":
            call.on_done(False, encode_compact(OWN_ERROR))
        elif call.method == "nothing":
            call.on_done(True, b"null")
        elif isinstance(call.params, list) and call.params:
            call.on_done(True, encode_compact(call.params[0]))
        else:
            call.on_done(True, encode_compact(call.params))


Observed = tuple[str, bool, Any]


@pytest.fixture
def sink() -> FakeSink:
    return FakeSink()


@pytest.fixture
def observed() -> list[Observed]:
    return []


async def discover(params: Any) -> Any:
    return {"openrpc": "1.3.2", "params": params}


async def refusing(params: Any) -> Any:
    raise JsonRpcError(4010, "not now", {"why": "test"})


async def buggy(params: Any) -> Any:
    raise KeyError("oops")


@pytest.fixture
def core(sink: FakeSink, observed: list[Observed]) -> JsonRpcCore:
    def observer(
        method: str, ok: bool, payload: bytes, elapsed_s: float, context: dict[str, Any] | None
    ) -> None:
        observed.append((method, ok, json.loads(payload)))

    return JsonRpcCore(
        sink,
        timeout_s=7.5,
        max_batch=4,
        server_methods={"rpc.discover": discover, "rpc.refuse": refusing, "rpc.buggy": buggy},
        observer=observer,
    )


def request(method: str, params: Any = None, request_id: Any = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
    if params is not None:
        message["params"] = params
    return message


def notification(method: str, params: Any = None) -> dict[str, Any]:
    message = request(method, params)
    del message["id"]
    return message


async def reply_to(core: JsonRpcCore, payload: Any, context: dict[str, Any] | None = None) -> Reply:
    text = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
    return await asyncio.wait_for(core.handle(text, context), ANSWER_TIMEOUT_S)


async def answer(core: JsonRpcCore, payload: Any) -> Any:
    reply = await reply_to(core, payload)
    return None if reply.body is None else json.loads(reply.body)


def test_the_fake_is_a_call_sink(sink: FakeSink) -> None:
    typed: CallSink = sink
    assert typed.queue_maxsize == 3


@pytest.mark.parametrize("request_id", ["abc", "", "é", 0, -7, 2**70, 1.5, -0.25, None])
async def test_ids_are_echoed_exactly(core: JsonRpcCore, request_id: Any) -> None:
    response = await answer(core, request("echo", ["x"], request_id))
    assert response == {"jsonrpc": "2.0", "result": "x", "id": request_id}
    assert type(response["id"]) is type(request_id)


async def test_fractional_ids_keep_their_digits(core: JsonRpcCore) -> None:
    reply = await reply_to(core, '{"jsonrpc":"2.0","method":"echo","params":[1],"id":0.1}')
    assert reply.body is not None and reply.body.endswith(b'"id":0.1}')


async def test_null_result_is_a_result(core: JsonRpcCore) -> None:
    assert await answer(core, request("nothing")) == {"jsonrpc": "2.0", "result": None, "id": 1}


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
async def test_invalid_request_objects(
    core: JsonRpcCore, sink: FakeSink, request_object: dict[str, Any], keeps_id: bool
) -> None:
    response = await answer(core, request_object)
    assert response["error"]["code"] == -32600
    assert response["id"] == (5 if keeps_id else None)
    assert "message" in response["error"]["data"]
    assert sink.submitted == []


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe", b"nul", b'{"a":1}}'])
async def test_bodies_that_are_not_json_are_parse_errors(core: JsonRpcCore, body: bytes) -> None:
    response = await answer(core, body)
    assert response["error"]["code"] == -32700 and response["id"] is None


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
async def test_what_is_not_strict_json_is_a_parse_error(core: JsonRpcCore, body: str) -> None:
    response = await answer(core, body)
    assert response["error"]["code"] == -32700 and response["id"] is None
    assert response["error"]["data"]["message"]


@pytest.mark.parametrize("body", [b"1", b'"text"', b"null", b"true"])
async def test_json_that_is_not_an_object_is_an_invalid_request(
    core: JsonRpcCore, body: bytes
) -> None:
    response = await answer(core, body)
    assert response["error"]["code"] == -32600 and response["id"] is None


async def test_empty_batch_is_one_invalid_request(core: JsonRpcCore) -> None:
    response = await answer(core, [])
    assert isinstance(response, dict)
    assert response["error"]["code"] == -32600 and response["id"] is None


async def test_batch_over_the_limit_gets_one_error(core: JsonRpcCore, sink: FakeSink) -> None:
    response = await answer(core, [request("echo", [i], i) for i in range(5)])
    assert isinstance(response, dict)
    assert response["error"]["code"] == -32600
    assert "limit of 4" in response["error"]["data"]["message"]
    assert sink.submitted == []


async def test_batch_of_invalid_members_gets_one_error_each(core: JsonRpcCore) -> None:
    response = await answer(core, [1, 2, 3])
    assert [(item["error"]["code"], item["id"]) for item in response] == [(-32600, None)] * 3


async def test_batch_answers_in_request_order_whatever_order_calls_finish(
    core: JsonRpcCore, sink: FakeSink
) -> None:
    response = await answer(core, [request("echo", [i], i) for i in range(4)])
    assert [(item["result"], item["id"]) for item in response] == [(i, i) for i in range(4)]
    assert len(sink.submitted) == 4


async def test_notification_is_run_and_gets_no_response(core: JsonRpcCore, sink: FakeSink) -> None:
    reply = await reply_to(core, notification("echo", ["x"]))
    assert reply.body is None and not reply.busy
    assert [call.method for call in sink.submitted] == ["echo"]


async def test_batch_of_notifications_only_gets_no_response(core: JsonRpcCore) -> None:
    reply = await reply_to(core, [notification("echo", [1]), notification("echo", [2])])
    assert reply.body is None


async def test_notifications_in_a_batch_get_no_response_entry(core: JsonRpcCore) -> None:
    batch = [request("echo", ["a"], "a"), notification("echo", ["n"]), {"x": 1}]
    response = await answer(core, batch)
    assert response == [
        {"jsonrpc": "2.0", "result": "a", "id": "a"},
        {
            "jsonrpc": "2.0",
            "error": {
                "code": -32600,
                "message": "Invalid Request",
                "data": response[1]["error"]["data"],
            },
            "id": None,
        },
    ]


async def test_failed_notification_is_logged(
    core: JsonRpcCore, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="server.jsonrpc"):
        assert (await reply_to(core, notification("refuse"))).body is None
    assert "notification refuse failed" in caplog.text


async def test_error_objects_of_the_sink_are_passed_through(core: JsonRpcCore) -> None:
    response = await answer(core, request("refuse", request_id=3))
    assert response == {"jsonrpc": "2.0", "error": OWN_ERROR, "id": 3}


@pytest.mark.parametrize("method", ["_private", "a._b", "a..b", "a.-b", "", "rpc.ping", "rpc."])
async def test_unreachable_names_are_not_found_without_a_call(
    core: JsonRpcCore, sink: FakeSink, observed: list[Observed], method: str
) -> None:
    response = await answer(core, request(method))
    assert response["error"]["code"] == -32601 and response["id"] == 1
    assert sink.submitted == []
    assert observed == [(method, False, {"code": -32601, "message": "Method not found"})]


async def test_server_method_answers_without_a_call(
    core: JsonRpcCore, sink: FakeSink, observed: list[Observed]
) -> None:
    response = await answer(core, request("rpc.discover", {"a": 1}))
    assert response["result"] == {"openrpc": "1.3.2", "params": {"a": 1}}
    assert sink.submitted == []
    assert [(method, ok) for method, ok, _ in observed] == [("rpc.discover", True)]


async def test_server_method_error_is_its_error_object(core: JsonRpcCore) -> None:
    response = await answer(core, request("rpc.refuse"))
    assert response["error"] == {"code": 4010, "message": "not now", "data": {"why": "test"}}


async def test_server_method_bug_is_an_internal_error_logged_with_its_stack(
    core: JsonRpcCore, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="server.jsonrpc"):
        response = await answer(core, request("rpc.buggy"))
    assert response["error"] == {
        "code": -32603,
        "message": "Internal error",
        "data": {"type": "KeyError"},
    }
    assert "server method rpc.buggy failed" in caplog.text
    assert caplog.records[0].exc_info is not None


def test_server_methods_must_be_under_the_reserved_prefix(sink: FakeSink) -> None:
    with pytest.raises(ValueError, match="reserved"):
        JsonRpcCore(sink, 1.0, 4, server_methods={"discover": discover})


async def test_batch_of_server_and_sink_methods_answers_in_request_order(
    core: JsonRpcCore,
) -> None:
    batch = [request("echo", [1], 1), request("rpc.discover", None, 2), request("echo", [3], 3)]
    response = await answer(core, batch)
    assert [item["id"] for item in response] == [1, 2, 3]
    assert response[1]["result"]["openrpc"] == "1.3.2"


async def test_busy_sink_refuses_every_request_of_the_payload(
    core: JsonRpcCore, sink: FakeSink, observed: list[Observed]
) -> None:
    sink.accepting = False
    batch = [request("echo", [1], 1), notification("echo", [2]), {"x": 1}, request("_no", None, 4)]
    reply = await reply_to(core, batch)
    assert reply.busy and reply.body is not None
    response = json.loads(reply.body)
    busy = {"code": -32003, "message": "Server busy", "data": {"queue_maxsize": 3}}
    assert [item.get("error") for item in response] == [
        busy,
        response[1]["error"],
        busy,
    ]
    assert response[1]["error"]["code"] == -32600
    assert [item["id"] for item in response] == [1, None, 4]
    assert [(method, ok) for method, ok, _ in observed] == [
        ("_no", False),
        ("echo", False),
        ("echo", False),
    ]


async def test_busy_sink_answers_a_notification_with_busy_and_null_id(
    core: JsonRpcCore, sink: FakeSink
) -> None:
    sink.accepting = False
    reply = await reply_to(core, notification("echo", [1]))
    assert reply.busy and reply.body is not None
    response = json.loads(reply.body)
    assert response["error"]["code"] == -32003 and response["id"] is None


async def test_calls_carry_the_time_limit_params_and_context(
    core: JsonRpcCore, sink: FakeSink
) -> None:
    await reply_to(core, request("echo", {"a": 1}), {"request_id": "r-1"})
    [call] = sink.submitted
    assert (call.method, call.params, call.timeout_s, call.context) == (
        "echo",
        {"a": 1},
        7.5,
        {"request_id": "r-1"},
    )


async def test_absent_params_reach_the_sink_as_none(core: JsonRpcCore, sink: FakeSink) -> None:
    await reply_to(core, request("nothing"))
    assert sink.submitted[0].params is None


async def test_reply_lists_the_methods_of_the_valid_requests(core: JsonRpcCore) -> None:
    batch = [request("echo", [1], 1), {"x": 1}, notification("nothing"), request("_no", None, 2)]
    reply = await reply_to(core, batch)
    assert reply.methods == ["echo", "nothing", "_no"]
