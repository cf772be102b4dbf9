"""How the bus client turns error objects into exceptions (no Redis needed)."""

from __future__ import annotations

from typing import Any

import pytest

from busclient import BusTimeout, RpcError, RpcTimeout


@pytest.mark.parametrize(
    "error",
    [
        {"code": -32004, "message": "Deadline passed before the call started"},
        {"code": -32001, "message": "Call timed out", "data": {"reason": "deadline"}},
    ],
)
def test_an_answer_that_the_deadline_passed_is_a_time_out(error: dict[str, Any]) -> None:
    with pytest.raises(BusTimeout) as caught:
        raise RpcError.from_object(error)
    assert isinstance(caught.value, RpcTimeout) and isinstance(caught.value, RpcError)
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.code == error["code"] and caught.value.data == error.get("data")


@pytest.mark.parametrize(
    "error",
    [
        {"code": -32001, "message": "Call timed out", "data": {"reason": "queued"}},
        {"code": -32001, "message": "Call timed out", "data": {"timeout_s": 5}},
        {"code": -32001, "message": "Call timed out", "data": "deadline"},
        {"code": -32002, "message": "Worker died during the call"},
    ],
)
def test_other_errors_are_not_time_outs_of_the_caller(error: dict[str, Any]) -> None:
    outcome = RpcError.from_object(error)
    assert type(outcome) is RpcError and outcome.code == error["code"]
