"""The metrics of the call semantics and the HTTP limits, through the real server: each event is
provoked, then read back from ``GET /metrics`` (docs/operations.md, "Metrics")."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import ServerProcess, StartServer, wait_for
from tests.test_deadlines_e2e import ONE_SLOT, PROBE, occupy_the_slot, request
from tests.test_hardening_http import (
    ECHO,
    closed_within,
    open_idle,
    pipeline_without_reading,
    start_with_descriptor_limit,
)
from tests.test_hardening_http import request as http_request

SHORT_TIMEOUTS = {
    "SBUSR_HEADER_TIMEOUT_S": "1",
    "SBUSR_KEEPALIVE_TIMEOUT_S": "1",
    "SBUSR_BODY_TIMEOUT_S": "1",
}


def sample(server: ServerProcess, name: str, **labels: str) -> float:
    """The value of one sample of ``GET /metrics`` (0 when absent), on a connection of its own
    that is closed at once (so the scrape itself is never idle, evicted or timed out)."""
    response = httpx.get(server.url + "/metrics", headers={"Connection": "close"}, timeout=10.0)
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return 0.0


def reaches(server: ServerProcess, name: str, value: float, **labels: str) -> None:
    """Poll ``GET /metrics`` until the sample is at least ``value``; fail after a deadline."""
    wait_for(
        lambda: sample(server, name, **labels) >= value,
        message=f"{name}{labels} to reach {value}",
    )


@pytest.fixture
def probe_methods(methods_dir: Path) -> Path:
    shutil.copy(PROBE, methods_dir / "deadline_probe.py")
    return methods_dir


# --- call semantics -------------------------------------------------------------------------


def test_a_deadline_passed_on_arrival_counts_each_request(start_server: StartServer) -> None:
    server = start_server()
    batch = [request("add", [1, 2], 1), request("echo", ["x"], 2)]
    response = server.post(batch, headers={"X-Timeout-Ms": "0"})
    assert [answer["error"]["code"] for answer in response.json()] == [-32004, -32004]
    assert sample(server, "sbusr_calls_deadline_passed_total", transport="http") == 2
    assert sample(server, "sbusr_calls_deadline_passed_total", transport="bus") == 0


def test_a_call_whose_deadline_passes_in_the_queue_is_counted(
    start_server: StartServer, probe_methods: Path, tmp_path: Path
) -> None:
    server = start_server(env=ONE_SLOT)
    busy = occupy_the_slot(server, tmp_path / "busy", 1.0)
    response = server.post(
        request("deadline_probe.mark_then_sleep", [str(tmp_path / "late"), 0]),
        headers={"X-Timeout-Ms": "100"},
    )
    assert response.json()["error"]["code"] == -32004
    busy.result(timeout=30)
    assert sample(server, "sbusr_calls_deadline_passed_total", transport="http") == 1


def test_calls_withdrawn_by_a_client_that_left_are_counted(
    start_server: StartServer, probe_methods: Path, tmp_path: Path
) -> None:
    server = start_server(env=ONE_SLOT)
    started, ended = tmp_path / "started", tmp_path / "ended"
    body = json.dumps(
        [
            request("deadline_probe.mark_then_wait", [str(started), str(ended), 60], 1),
            request("echo", ["queued"], 2),
            request("echo", ["queued too"], 3),
        ]
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
        client.sendall(http_request(body))
        wait_for(started.exists, message="the async call to start")
        assert sample(server, "sbusr_calls_withdrawn_total", transport="http") == 0
    wait_for(ended.exists, message="the running call to be cancelled")
    # the two queued calls were withdrawn; the running one was cancelled, not withdrawn
    reaches(server, "sbusr_calls_withdrawn_total", 2, transport="http")
    assert sample(server, "sbusr_calls_withdrawn_total", transport="http") == 2


def test_idempotent_replays_and_refusals_are_counted(start_server: StartServer) -> None:
    server = start_server()
    body = request("add", [1, 2])
    for _ in range(3):
        assert server.post(body, headers={"Idempotency-Key": "k-1"}).status_code == 200
    other = server.post(request("add", [2, 2]), headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 422
    assert sample(server, "sbusr_idempotent_replays_total", transport="http") == 2
    assert sample(server, "sbusr_idempotent_refusals_total", transport="http") == 1


# --- HTTP connections ----------------------------------------------------------------------


def test_an_idle_connection_evicted_at_the_ceiling_is_counted(start_server: StartServer) -> None:
    server = start_server(env={"SBUSR_MAX_CONNECTIONS": "2"})
    assert sample(server, "sbusr_http_connections_evicted_total") == 0
    idle: list[socket.socket] = []

    def evicted_after_one_more_idle() -> bool:
        # idle connections fill the ceiling; the next one (or the scrape) evicts the oldest
        idle.extend(open_idle(server.port, 1))
        return sample(server, "sbusr_http_connections_evicted_total") >= 1

    try:
        wait_for(evicted_after_one_more_idle, message="an idle connection to be evicted")
        assert any(closed_within(connection, 0.5) for connection in idle)
    finally:
        for connection in idle:
            connection.close()


def test_a_connection_refused_at_the_ceiling_is_counted(
    start_server: StartServer, probe_methods: Path, tmp_path: Path
) -> None:
    server = start_server(env={"SBUSR_MAX_CONNECTIONS": "1"})
    assert sample(server, "sbusr_http_connections_refused_total") == 0
    busy = occupy_the_slot(server, tmp_path / "busy", 2.0)  # the one connection, not idle
    with socket.create_connection(("127.0.0.1", server.port)) as connection:
        assert closed_within(connection, 5.0)
    busy.result(timeout=30)
    assert sample(server, "sbusr_http_connections_refused_total") == 1


@pytest.mark.parametrize(
    "sent, reason",
    [
        (b"", "header_timeout"),
        (b"POST /rpc HTTP/1.1\r\nHost: x\r\n", "header_timeout"),
        (b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{", "body_timeout"),
        (http_request(ECHO), "keepalive_timeout"),
    ],
)
def test_a_connection_closed_at_a_time_out_is_counted_by_reason(
    start_server: StartServer, sent: bytes, reason: str
) -> None:
    server = start_server(env=SHORT_TIMEOUTS)
    with socket.create_connection(("127.0.0.1", server.port)) as connection:
        connection.sendall(sent)
        assert closed_within(connection, 10.0)
    reaches(server, "sbusr_http_connections_closed_total", 1, reason=reason)
    others = {"header_timeout", "keepalive_timeout", "body_timeout"} - {reason}
    for other in others:
        assert sample(server, "sbusr_http_connections_closed_total", reason=other) == 0


def test_a_client_that_closes_in_time_is_not_counted(start_server: StartServer) -> None:
    server = start_server(env=SHORT_TIMEOUTS)
    for _ in range(3):
        response = httpx.get(server.url + "/health_check", headers={"Connection": "close"})
        assert response.status_code == 200
    for reason in ("header_timeout", "keepalive_timeout", "body_timeout"):
        assert sample(server, "sbusr_http_connections_closed_total", reason=reason) == 0


def test_a_connection_whose_output_stalled_is_counted(start_server: StartServer) -> None:
    server = start_server(env={"SBUSR_MAX_UNSENT_BYTES": "65536", "SBUSR_WRITE_TIMEOUT_S": "600"})
    connection = pipeline_without_reading(server.port, 40, 200_000)
    try:
        reaches(server, "sbusr_http_connections_closed_total", 1, reason="unsent_output")
    finally:
        connection.close()
    assert sample(server, "sbusr_http_connections_closed_total", reason="write_timeout") == 0


def test_accept_errors_are_counted(start_server: StartServer) -> None:
    # a ceiling above the descriptor limit: accepting fails with EMFILE
    server = start_with_descriptor_limit(start_server, 256, {"SBUSR_MAX_CONNECTIONS": "5000"})
    server.wait_until_serving()
    assert sample(server, "sbusr_http_accept_errors_total") == 0
    idle = open_idle(server.port, 400)
    try:
        wait_for(lambda: "accept failed" in server.log(), message="the accept error line")
    finally:
        for connection in idle:
            connection.close()
    reaches(server, "sbusr_http_accept_errors_total", 1)
