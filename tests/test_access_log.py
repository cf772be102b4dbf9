"""The access log (one line per HTTP request) and X-Request-ID, into the workers' log lines."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.support import ServerProcess, StartServer, wait_for


def log_lines(server: ServerProcess, pattern: str) -> list[str]:
    return [line for line in server.log().splitlines() if re.search(pattern, line)]


def test_access_line_per_request(shared_server: ServerProcess) -> None:
    response = shared_server.post(
        [
            {"jsonrpc": "2.0", "method": "echo", "params": ["a"], "id": 1},
            {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 2},
        ],
        headers={"X-Request-ID": "batch-42"},
    )
    assert response.status_code == 200
    lines = wait_for(
        lambda: log_lines(shared_server, r"sbusr\.access.*POST /rpc 200 "), message="access line"
    )
    assert re.search(r"POST /rpc 200 \d+\.\dms echo,add request_id=batch-42$", lines[-1]), lines[-1]


def test_access_log_off(start_server: StartServer) -> None:
    server = start_server(env={"SBUSR_ACCESS_LOG": "0"})
    server.call("echo", ["hi"])
    server.call("warnlog", ["marker-after-call"])  # a line that comes after the request's
    wait_for(lambda: log_lines(server, "marker-after-call"), message="the worker's log line")
    assert server.http.get("/sys/status").status_code == 200
    assert not log_lines(server, r"sbusr\.access")


def test_request_id_is_echoed(shared_server: ServerProcess) -> None:
    response = shared_server.post(
        {"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": 1},
        headers={"X-Request-ID": "abc-123"},
    )
    assert response.headers["X-Request-ID"] == "abc-123"


def test_request_id_is_generated_when_absent_or_unsafe(shared_server: ServerProcess) -> None:
    plain = shared_server.post({"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": 1})
    assert re.fullmatch(r"[0-9a-f]{32}", plain.headers["X-Request-ID"])
    forged = shared_server.post(
        {"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": 1},
        headers={"X-Request-ID": "a b\tc" + "x" * 200},
    )
    assert re.fullmatch(r"[0-9a-f]{32}", forged.headers["X-Request-ID"])


def test_request_id_on_error_responses(shared_server: ServerProcess) -> None:
    response = shared_server.http.get("/no/such/route", headers={"X-Request-ID": "err-1"})
    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "err-1"
    assert (
        shared_server.http.get("/rpc", headers={"X-Request-ID": "err-2"}).headers["X-Request-ID"]
        == "err-2"
    )


def test_request_id_reaches_the_worker_log_line(shared_server: ServerProcess) -> None:
    shared_server.post(
        {"jsonrpc": "2.0", "method": "warnlog", "params": ["from the worker"], "id": 1},
        headers={"X-Request-ID": "trace-77"},
    )
    line = wait_for(
        lambda: log_lines(shared_server, "from the worker"), message="the worker's line"
    )[0]
    assert "WARNING methods[" in line
    assert line.endswith("request_id=trace-77")
    assert f"[{shared_server.process.pid}]" not in line  # written by the worker process


def test_json_log_format(start_server: StartServer) -> None:
    server = start_server(env={"SBUSR_LOG_FORMAT": "json"})
    server.post(
        {"jsonrpc": "2.0", "method": "warnlog", "params": ["json marker"], "id": 1},
        headers={"X-Request-ID": "json-9"},
    )

    def records() -> list[dict[str, Any]]:
        found = []
        for line in server.log().splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found

    access = wait_for(
        lambda: [
            r
            for r in records()
            if r["logger"] == "sbusr.access" and r.get("request_id") == "json-9"
        ],
        message="JSON access line",
    )[0]
    assert access["http_method"] == "POST" and access["path"] == "/rpc" and access["status"] == 200
    assert access["rpc_methods"] == ["warnlog"] and access["duration_ms"] >= 0
    worker = [r for r in records() if r["message"] == "json marker"][0]
    assert worker["request_id"] == "json-9" and worker["level"] == "WARNING"
