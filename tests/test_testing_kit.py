"""A sample of how a user tests methods: in-process with kit.testing, over HTTP with the plugin.

The shipped ``methods/orders.py`` is the method under test; the same tests work on any methods
folder (override the ``sbusr_methods_dir`` fixture to serve another one). The plugin is enabled
in tests/conftest.py with ``pytest_plugins = ["kit.pytest_plugin"]``.
"""

from __future__ import annotations

import pytest

from kit import JsonRpcError
from kit.pytest_plugin import SbusrServer
from kit.testing import acall, call

ORDER = {
    "lines": [
        {"sku": "tea", "qty": "2", "unit_price": "1.25"},
        {"sku": "cake", "qty": 1, "unit_price": 3},
    ],
    "placed_at": "2024-05-01T10:00:00Z",
}
RECEIPT = {"total": "5.50", "currency": "EUR", "items": 3, "placed_at": "2024-05-01T10:00:00Z"}


def test_call_converts_params_and_encodes_the_result() -> None:
    assert call("orders.double", ["21"]) == 42
    assert call("orders.total", {"order": ORDER}) == RECEIPT


def test_call_raises_the_error_a_caller_gets() -> None:
    with pytest.raises(JsonRpcError) as caught:
        call("orders.total", [{"lines": [{"sku": "tea", "qty": "lots", "unit_price": 1}]}])
    assert caught.value.code == -32602
    assert [error["path"] for error in caught.value.data["errors"]] == ["/0/lines/0/qty"]


def test_call_applies_the_params_schema_and_the_methods_own_codes() -> None:
    with pytest.raises(JsonRpcError) as caught:
        call("greetings.greet", {"name": ""})
    assert (caught.value.code, caught.value.data["errors"][0]["path"]) == (-32602, "/name")
    with pytest.raises(JsonRpcError) as refused:
        call("greetings.refuse", ["Ada"])
    assert (refused.value.code, refused.value.data) == (4004, {"name": "Ada"})
    with pytest.raises(JsonRpcError) as missing:
        call("no.such.method")
    assert missing.value.code == -32601


def test_a_raising_method_is_answered_32000() -> None:
    with pytest.raises(JsonRpcError) as caught:
        call("exception", ["boom"])
    assert caught.value.code == -32000
    assert caught.value.data == {"type": "RuntimeError", "message": "boom"}


async def test_acall_runs_an_async_method() -> None:
    assert await acall("greetings.greet_later", {"name": "Ada", "delay_s": "0"}) == "Hello, Ada!"


def test_the_real_server_answers_the_same(sbusr_server: SbusrServer) -> None:
    assert sbusr_server.call("orders.total", {"order": ORDER}) == RECEIPT
    with pytest.raises(JsonRpcError) as caught:
        sbusr_server.call("orders.double", ["lots"])
    assert caught.value.code == -32602
    assert caught.value.data["errors"][0]["path"] == "/0"


def test_the_servers_document_describes_the_hinted_method(sbusr_server: SbusrServer) -> None:
    document = sbusr_server.http.get("/openrpc.json").json()
    total = next(m for m in document["methods"] if m["name"] == "orders.total")
    assert total["params"][0]["schema"] == {"$ref": "#/components/schemas/Order"}
    assert document["components"]["schemas"]["Line"]["properties"]["qty"]["type"] == "integer"
