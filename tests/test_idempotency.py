"""``Idempotency-Key`` on ``POST /rpc`` without Redis: the in-memory store of one instance."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import PROJECT_DIR, ServerProcess, copy_methods, in_background, wait_for

ONCE_METHODS = PROJECT_DIR / "tests" / "fixtures" / "once.py"


def request(method: str, params: list[object], request_id: object = 1) -> str:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": request_id})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server without Redis for the module (each test uses keys of its own)."""
    folder = tmp_path_factory.mktemp("idempotency")
    methods = copy_methods(folder / "methods")
    shutil.copy(ONCE_METHODS, methods / "once.py")
    server = ServerProcess(methods, folder / "server.log")
    yield server
    server.stop()


def gated_request(counter: Path, gate: Path) -> str:
    """A request of ``once.gated`` that counts in ``counter`` and waits until ``gate`` exists."""
    return request("once.gated", [str(counter), str(gate)])


def wait_until_waiting(server: ServerProcess, key: str) -> None:
    """Wait until ``server`` logs that a duplicate with ``key`` waits for the first's response."""
    wait_for(
        lambda: f"{key!r} is running for another request" in server.log(),
        message="the duplicate to wait",
    )


def runs(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def test_repeat_with_the_same_key_gets_the_stored_response_without_running(
    server: ServerProcess, tmp_path: Path
) -> None:
    counter = tmp_path / "runs.txt"
    body = request("once.gated", [str(counter)])
    first = server.post(body, headers={"Idempotency-Key": "order-1"})
    again = server.post(body, headers={"Idempotency-Key": "order-1"})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() == {"jsonrpc": "2.0", "result": 1, "id": 1}
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert runs(counter) == 1
    other = server.post(body, headers={"Idempotency-Key": "order-2"})
    assert other.json()["result"] == 2


def test_the_key_may_be_a_structured_field_string(server: ServerProcess, tmp_path: Path) -> None:
    counter = tmp_path / "runs.txt"
    body = request("once.gated", [str(counter)])
    server.post(body, headers={"Idempotency-Key": '"8e03978e-40d5"'})
    again = server.post(body, headers={"Idempotency-Key": "8e03978e-40d5"})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert runs(counter) == 1


def test_same_key_with_another_body_is_422(server: ServerProcess, tmp_path: Path) -> None:
    counter = tmp_path / "runs.txt"
    server.post(request("once.gated", [str(counter)]), headers={"Idempotency-Key": "k"})
    refused = server.post(
        request("once.gated", [str(counter)], 2), headers={"Idempotency-Key": "k"}
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == 422
    assert refused.json()["error"]["details"] == {"idempotency_key": "k"}
    assert runs(counter) == 1


@pytest.mark.parametrize("key", [b"", b"x" * 256, "caf\u00e9".encode()])
def test_an_empty_overlong_or_non_ascii_key_is_400(server: ServerProcess, key: bytes) -> None:
    refused = server.http.post(
        "/rpc", content=request("add", [1, 2]), headers={b"Idempotency-Key": key}
    )
    assert refused.status_code == 400
    assert "idempotency key" in refused.json()["error"]["message"]


def test_concurrent_duplicates_run_once(server: ServerProcess, tmp_path: Path) -> None:
    counter, gate = tmp_path / "runs.txt", tmp_path / "gate"
    body, headers = gated_request(counter, gate), {"Idempotency-Key": "concurrent"}
    first = in_background(server.post, body, headers)
    wait_for(lambda: runs(counter) == 1, message="the first call to run")
    second = in_background(server.post, body, headers)
    wait_until_waiting(server, "concurrent")
    gate.touch()
    answers = [first.result(timeout=30), second.result(timeout=30)]
    assert [answer.json() for answer in answers] == [{"jsonrpc": "2.0", "result": 1, "id": 1}] * 2
    assert answers[1].headers["Idempotent-Replayed"] == "true"
    assert runs(counter) == 1


def test_the_key_covers_a_whole_batch(server: ServerProcess, tmp_path: Path) -> None:
    counter = tmp_path / "runs.txt"
    batch = json.dumps(
        [
            {"jsonrpc": "2.0", "method": "once.gated", "params": [str(counter)], "id": 1},
            {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 2},
        ]
    )
    first = server.post(batch, headers={"Idempotency-Key": "batch"})
    again = server.post(batch, headers={"Idempotency-Key": "batch"})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert runs(counter) == 1


def test_an_error_answer_is_stored_too(server: ServerProcess) -> None:
    body = request("exception", ["boom"])
    first = server.post(body, headers={"Idempotency-Key": "fails"})
    again = server.post(body, headers={"Idempotency-Key": "fails"})
    assert first.json()["error"]["code"] == -32000
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
