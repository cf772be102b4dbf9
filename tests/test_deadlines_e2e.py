"""Caller deadlines and withdrawal over HTTP, end to end (design.md, "Deadlines and
idempotency"): ``X-Timeout-Ms``, -32004, a running call cut at the deadline, what a method sees,
and a client that disconnects."""

from __future__ import annotations

import concurrent.futures
import http.server
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import ServerProcess, StartServer, in_background, wait_for

PROBE = Path(__file__).parent / "fixtures" / "deadline_probe.py"
#: one worker running one call at a time: a second call waits in the pool's queue
ONE_SLOT = {"SBUSR_POOL_PROCESSES": "1", "SBUSR_WORKER_CONCURRENCY": "1"}


@pytest.fixture
def probe_methods(methods_dir: Path) -> Path:
    shutil.copy(PROBE, methods_dir / "deadline_probe.py")
    return methods_dir


def request(method: str, params: list[object], request_id: object = 1) -> dict[str, object]:
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": request_id}


def occupy_the_slot(
    server: ServerProcess, marker: Path, seconds: float
) -> concurrent.futures.Future[Any]:
    """Start a blocking call that holds the only slot; return its future once it runs."""
    future = in_background(
        server.call, "deadline_probe.mark_then_sleep", [str(marker), seconds], "busy"
    )
    wait_for(marker.exists, message="the slow call to start")
    return future


def test_a_queued_call_whose_timeout_passes_gets_32004_and_never_runs(
    start_server: StartServer, probe_methods: Path, tmp_path: Path
) -> None:
    server = start_server(env=ONE_SLOT)
    busy = occupy_the_slot(server, tmp_path / "busy", 2.0)
    late = tmp_path / "late"
    response = server.post(
        request("deadline_probe.mark_then_sleep", [str(late), 0], "late"),
        headers={"X-Timeout-Ms": "300"},
    )
    assert response.status_code == 200
    error = response.json()["error"]
    assert error["code"] == -32004
    assert error["data"]["missed_by_ms"] >= 0
    assert busy.result(timeout=30)["result"] == str(tmp_path / "busy")
    assert server.call("add", [1, 2])["result"] == 3  # the queue has moved on past it
    assert not late.exists()


def test_a_deadline_already_passed_on_arrival_runs_nothing(
    start_server: StartServer, probe_methods: Path, tmp_path: Path
) -> None:
    server = start_server()
    marker = tmp_path / "never"
    batch = [
        request("deadline_probe.mark_then_sleep", [str(marker), 0], 1),
        request("add", [1, 2], 2),
    ]
    response = server.post(batch, headers={"X-Timeout-Ms": "0"})
    answers = sorted(response.json(), key=lambda answer: answer["id"])
    assert [answer["error"]["code"] for answer in answers] == [-32004, -32004]
    assert server.call("add", [1, 2])["result"] == 3
    assert not marker.exists()


def test_a_running_call_is_cut_at_the_callers_deadline_not_the_methods_limit(
    start_server: StartServer, probe_methods: Path, tmp_path: Path
) -> None:
    server = start_server(env={"SBUSR_RPC_TIMEOUT": "60"})
    started, ended = tmp_path / "started", tmp_path / "ended"
    response = server.post(
        request("deadline_probe.mark_then_wait", [str(started), str(ended), 60]),
        headers={"X-Timeout-Ms": "700"},
    )
    error = response.json()["error"]
    assert error["code"] == -32001
    assert error["data"]["reason"] == "deadline"
    assert error["data"]["timeout_s"] <= 0.7
    assert started.exists()  # it ran, and was cut
    wait_for(ended.exists, message="the cut call to end in its worker")
    assert ended.read_text() == "cancelled"


@pytest.mark.parametrize("value", ["soon", "-5", "nan"])
def test_a_bad_timeout_header_is_refused_with_400(shared_server: ServerProcess, value: str) -> None:
    response = shared_server.post(request("add", [1, 2]), headers={"X-Timeout-Ms": value})
    assert response.status_code == 400
    assert "X-Timeout-Ms" in response.json()["error"]["message"]


def test_a_method_reads_its_deadline(start_server: StartServer, probe_methods: Path) -> None:
    server = start_server()
    before_ms = time.time() * 1000.0
    response = server.post(
        request("deadline_probe.my_deadline", []), headers={"X-Timeout-Ms": "5000"}
    )
    after_ms = time.time() * 1000.0
    seen = response.json()["result"]
    assert before_ms + 5000 <= seen["deadline_ms"] <= after_ms + 5000
    assert 0 < seen["time_left_s"] <= 5.0
    assert server.call("deadline_probe.my_deadline", [])["result"] == {
        "deadline_ms": None,
        "time_left_s": None,
    }


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web_service() -> Iterator[str]:
    """A local HTTP server answering 200 to every GET; its URL."""
    service = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=service.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{service.server_address[1]}/"
    service.shutdown()
    service.server_close()


def test_kit_http_takes_the_time_left_as_its_timeout(
    start_server: StartServer, probe_methods: Path, web_service: str
) -> None:
    server = start_server()
    bounded = server.post(
        request("deadline_probe.http_read_timeout", [web_service]),
        headers={"X-Timeout-Ms": "4000"},
    )
    assert 0 < bounded.json()["result"] <= 4.0
    unbounded = server.call("deadline_probe.http_read_timeout", [web_service])
    assert unbounded["result"] == 30.0


def test_a_client_that_disconnects_withdraws_its_calls(
    start_server: StartServer, probe_methods: Path, tmp_path: Path
) -> None:
    server = start_server(env=ONE_SLOT)
    started, ended, queued = tmp_path / "started", tmp_path / "ended", tmp_path / "queued"
    body = json.dumps(
        [
            request("deadline_probe.mark_then_wait", [str(started), str(ended), 60], 1),
            request("deadline_probe.mark_then_sleep", [str(queued), 0], 2),
        ]
    ).encode()
    head = (
        f"POST /rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
        client.sendall(head + body)
        wait_for(started.exists, message="the async call to start")
    wait_for(ended.exists, message="the running async call to be cancelled")
    assert ended.read_text() == "cancelled"
    assert server.call("add", [1, 2])["result"] == 3  # the only slot is free: nothing waits
    assert not queued.exists()
    assert server.status()["in_flight"] == 0
