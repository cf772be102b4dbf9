"""The HTTP transport end to end: routes, limits, auth, JSON errors, a foreign client."""

from __future__ import annotations

import concurrent.futures
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonrpcclient
import pytest

from tests.support import ServerProcess, StartServer, wait_for


def test_first_call_of_the_readme(shared_server: ServerProcess) -> None:
    response = shared_server.post('{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}')
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"jsonrpc": "2.0", "result": 3, "id": 1}


def test_root_path_is_an_alias_of_rpc(shared_server: ServerProcess) -> None:
    response = shared_server.http.post(
        "/", json={"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": 2}
    )
    assert response.json() == {"jsonrpc": "2.0", "result": "x", "id": 2}


@pytest.mark.parametrize(
    "method, params, result",
    [
        ("plus", [1, 2, 3.5], 6.5),
        ("plus", [], 0),
        ("mymodule.MyClass.mymethod", {"name": "Ann"}, "hello, Ann"),
        ("mymodule.MyClass.double", [21], 42),
        ("bar.boo.loo.Loo.dec", [10, 4], 6),
        ("greetings.greet", {"name": "Bo"}, "Hello, Bo!"),
        ("greetings.greet_later", ["Cy"], "Hello, Cy!"),
    ],
)
def test_example_methods(
    shared_server: ServerProcess, method: str, params: Any, result: Any
) -> None:
    assert shared_server.call(method, params)["result"] == result


@pytest.mark.parametrize(
    "method",
    [
        "mymodule.MyClass",
        "mymodule.MyClass.not_reachable",
        "logging.getLogger",
        "time.sleep",
        "_private",
        "rpc.no_such_method",
    ],
)
def test_unreachable_names(shared_server: ServerProcess, method: str) -> None:
    assert shared_server.call(method)["error"]["code"] == -32601


def test_a_client_nobody_here_wrote(shared_server: ServerProcess) -> None:
    request = jsonrpcclient.request("add", params=(40, 2))
    parsed = jsonrpcclient.parse(httpx.post(shared_server.url + "/rpc", json=request).json())
    assert isinstance(parsed, jsonrpcclient.Ok) and parsed.result == 42
    error = jsonrpcclient.parse(
        httpx.post(shared_server.url + "/rpc", json=jsonrpcclient.request("nope")).json()
    )
    assert isinstance(error, jsonrpcclient.Error) and error.code == -32601


@pytest.mark.parametrize("verb", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_http_method_is_a_json_405(shared_server: ServerProcess, verb: str) -> None:
    response = shared_server.http.request(verb, "/rpc")
    assert response.status_code == 405
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == 405


@pytest.mark.parametrize("path", ["/nope", "/sys", "/rpc/extra", "/sys/status/x"])
def test_unknown_routes_are_json_404(shared_server: ServerProcess, path: str) -> None:
    response = shared_server.http.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == 404


def test_status_and_health(server: ServerProcess) -> None:
    health = server.http.get("/health_check")
    assert health.json() == {"status": "ok", "generation": 1}
    status = server.status()
    assert status["generation"] == 1 and status["queue_depth"] == 0 and status["in_flight"] == 0
    assert status["uptime_s"] >= 0
    assert len(status["workers"]) == 2
    assert {"pid", "busy", "calls_served", "generation", "state"} <= set(status["workers"][0])


def test_body_over_the_limit_is_413(start_server: StartServer) -> None:
    server = start_server(env={"SBUSR_MAX_BODY_BYTES": "200"})
    big = {"jsonrpc": "2.0", "method": "echo", "params": ["x" * 300], "id": 1}
    response = server.post(big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == 413

    def chunks() -> Iterator[bytes]:
        yield b'{"jsonrpc":"2.0","method":"echo","params":["'
        yield b"y" * 300
        yield b'"],"id":1}'

    chunked = server.http.post("/rpc", content=chunks())
    assert chunked.status_code == 413
    assert server.call("echo", ["small"])["result"] == "small"


def test_batch_limit(start_server: StartServer) -> None:
    server = start_server(env={"SBUSR_MAX_BATCH": "3"})
    batch = [{"jsonrpc": "2.0", "method": "echo", "params": [n], "id": n} for n in range(4)]
    body = server.post(batch).json()
    assert body["error"]["code"] == -32600 and body["id"] is None
    assert len(server.post(batch[:3]).json()) == 3


def test_bearer_token(start_server: StartServer) -> None:
    server = start_server(env={"SBUSR_AUTH_TOKEN": "t0ken"})
    request = {"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": 1}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic t0ken"}):
        response = server.post(request, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == 401
    assert server.http.get("/sys/status").status_code == 401
    assert server.http.get("/nope").status_code == 401
    assert server.http.get("/health_check").status_code == 200
    good = server.post(request, headers={"Authorization": "Bearer t0ken"})
    assert good.json()["result"] == "x"
    assert "t0ken" not in server.log()


def test_open_bind_allowed_without_token_warns(start_server: StartServer) -> None:
    server = start_server(env={"SBUSR_HOST": "0.0.0.0", "SBUSR_ALLOW_UNAUTHENTICATED": "1"})
    assert server.call("echo", ["x"])["result"] == "x"
    assert "without SBUSR_AUTH_TOKEN" in server.log()


def test_debug_puts_the_traceback_in_error_data(start_server: StartServer) -> None:
    server = start_server(env={"SBUSR_DEBUG": "1"})
    data = server.call("exception", ["boom"])["error"]["data"]
    assert data["type"] == "RuntimeError" and "Traceback" in data["traceback"]


def test_sigterm_lets_running_calls_finish(start_server: StartServer) -> None:
    server = start_server()
    with concurrent.futures.ThreadPoolExecutor(2) as executor:
        running = [executor.submit(server.call, "sleep", [1.0], n) for n in range(2)]
        wait_for(lambda: server.status()["in_flight"] == 2, message="two calls running")
        server.process.send_signal(signal.SIGTERM)
        assert [future.result(timeout=20)["result"] for future in running] == [1.0, 1.0]
    assert server.process.wait(20) == 0
    assert "stopped" in server.log()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/health_check")


def test_sigint_stops_gracefully_too(start_server: StartServer) -> None:
    server = start_server()
    assert server.stop(signal.SIGINT) == 0


def test_shutdown_answers_calls_that_outlive_the_grace(start_server: StartServer) -> None:
    server = start_server(env={"SBUSR_SHUTDOWN_GRACE": "0.5"})
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        running = executor.submit(server.call, "sleep", [30], "late")
        wait_for(lambda: server.status()["in_flight"] == 1, message="the call to run")
        server.process.send_signal(signal.SIGTERM)
        response = running.result(timeout=20)
    assert response["error"]["code"] == -32001
    assert response["error"]["data"]["reason"] == "shutdown"
    assert server.process.wait(20) == 0


def test_every_refused_resolution_case_end_to_end(tmp_path: Path) -> None:
    from tests.test_resolve import FIXTURE, REACHABLE, REFUSED

    server = ServerProcess(FIXTURE, tmp_path / "server.log")
    try:
        refused = [name for name in REFUSED if name != "rpc.discover"]  # the server's own method
        names = refused + sorted(REACHABLE)
        batch = [
            {"jsonrpc": "2.0", "method": name, "id": number} for number, name in enumerate(names)
        ]
        body = {item["id"]: item for item in server.post(batch).json()}
        for number, name in enumerate(names):
            if name in REACHABLE:
                assert body[number]["result"] == REACHABLE[name], name
            else:
                assert body[number]["error"]["code"] == -32601, name
    finally:
        server.stop()


@pytest.mark.parametrize(
    "body",
    [
        '{"jsonrpc":"2.0","method":"echo","params":["x"],"id":"\\udc80"}',
        '[{"jsonrpc":"2.0","method":"echo","params":["x"],"id":"a\\ud800"}]',
    ],
)
def test_an_id_with_a_lone_surrogate_is_an_invalid_request(
    shared_server: ServerProcess, body: str
) -> None:
    """UTF-8 cannot carry the id back, so the request is invalid: -32600 with id null, not 500."""
    response = shared_server.post(body)
    assert response.status_code == 200, response.text
    answer = response.json()
    answer = answer[0] if isinstance(answer, list) else answer
    assert answer["error"]["code"] == -32600, answer
    assert answer["id"] is None
    assert "lone surrogate" in answer["error"]["data"]["message"]
