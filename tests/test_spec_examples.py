"""Every example of the JSON-RPC 2.0 specification, section 7, against the real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import ServerProcess

SPEC_METHODS = Path(__file__).parent / "fixtures" / "spec_methods"


@pytest.fixture(scope="module")
def spec_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(SPEC_METHODS, tmp_path_factory.mktemp("spec") / "server.log")
    yield server
    server.stop()


def by_id(responses: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {response["id"]: response for response in responses}


@pytest.mark.parametrize(
    "params, request_id, result",
    [
        ([42, 23], 1, 19),
        ([23, 42], 2, -19),
        ({"subtrahend": 23, "minuend": 42}, 3, 19),
        ({"minuend": 42, "subtrahend": 23}, 4, 19),
    ],
)
def test_subtract_positional_and_named(
    spec_server: ServerProcess, params: Any, request_id: int, result: int
) -> None:
    assert spec_server.call("subtract", params, request_id) == {
        "jsonrpc": "2.0",
        "result": result,
        "id": request_id,
    }


@pytest.mark.parametrize(
    "body",
    [
        '{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}',
        '{"jsonrpc": "2.0", "method": "foobar"}',
    ],
)
def test_notification_gets_no_response(spec_server: ServerProcess, body: str) -> None:
    response = spec_server.post(body)
    assert response.status_code == 204
    assert response.content == b""


def test_non_existent_method(spec_server: ServerProcess) -> None:
    response = spec_server.post('{"jsonrpc": "2.0", "method": "foobaz", "id": "1"}').json()
    assert response["error"]["code"] == -32601
    assert response["id"] == "1"


def test_invalid_json(spec_server: ServerProcess) -> None:
    response = spec_server.post('{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]')
    assert response.status_code == 200
    body = response.json()
    assert body["error"]["code"] == -32700
    assert body["id"] is None


def test_invalid_request_object(spec_server: ServerProcess) -> None:
    body = spec_server.post('{"jsonrpc": "2.0", "method": 1, "params": "bar"}').json()
    assert body["error"]["code"] == -32600
    assert body["id"] is None


def test_batch_with_invalid_json(spec_server: ServerProcess) -> None:
    body = spec_server.post(
        '[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},'
        '{"jsonrpc": "2.0", "method"]'
    ).json()
    assert isinstance(body, dict)
    assert body["error"]["code"] == -32700
    assert body["id"] is None


def test_empty_batch(spec_server: ServerProcess) -> None:
    body = spec_server.post("[]").json()
    assert isinstance(body, dict)
    assert body["error"]["code"] == -32600
    assert body["id"] is None


@pytest.mark.parametrize("batch, count", [("[1]", 1), ("[1,2,3]", 3)])
def test_invalid_batch_members(spec_server: ServerProcess, batch: str, count: int) -> None:
    body = spec_server.post(batch).json()
    assert isinstance(body, list) and len(body) == count
    assert all(item["error"]["code"] == -32600 and item["id"] is None for item in body)


def test_mixed_batch(spec_server: ServerProcess) -> None:
    body = spec_server.post(
        [
            {"jsonrpc": "2.0", "method": "sum", "params": [1, 2, 4], "id": "1"},
            {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
            {"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": "2"},
            {"foo": "boo"},
            {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
            {"jsonrpc": "2.0", "method": "get_data", "id": "9"},
        ]
    ).json()
    assert len(body) == 5
    invalid = [item for item in body if item["id"] is None]
    assert len(invalid) == 1 and invalid[0]["error"]["code"] == -32600
    responses = by_id([item for item in body if item["id"] is not None])
    assert responses["1"]["result"] == 7
    assert responses["2"]["result"] == 19
    assert responses["5"]["error"]["code"] == -32601
    assert responses["9"]["result"] == ["hello", 5]


def test_batch_of_notifications_only(spec_server: ServerProcess) -> None:
    response = spec_server.post(
        [
            {"jsonrpc": "2.0", "method": "notify_sum", "params": [1, 2, 4]},
            {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        ]
    )
    assert response.status_code == 204
    assert response.content == b""
