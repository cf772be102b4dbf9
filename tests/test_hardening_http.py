"""HTTP under hostile clients, through the real server: time-outs, the connection ceiling,
accept errors, stalled output, 413 in every over-limit case, HEAD, the token rule, log lines
that caller input cannot forge (docs/operations.md, "Limits")."""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from server.http.app import Services, routes
from settings import Settings
from tests.support import PROJECT_DIR, ServerProcess, StartServer, wait_for
from tests.test_rpc_delegate import Wire, chunked

LIMIT = 1000
ECHO = b'{"jsonrpc":"2.0","method":"echo","params":["hi"],"id":7}'


def request(body: bytes, path: bytes = b"/rpc", extra: bytes = b"") -> bytes:
    """A POST with ``body`` and its Content-Length."""
    return (
        b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n" % len(body) + extra + b"\r\n" + body
    )


def closed_within(connection: socket.socket, timeout_s: float) -> bool:
    """True when the server closes ``connection`` (EOF or reset) within ``timeout_s``."""
    connection.settimeout(timeout_s)
    try:
        while connection.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def rss_kib(pid: int) -> int:
    """Resident memory of a process, KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1))


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with a small body limit and short time-outs, for the whole module."""
    from tests.support import SHIPPED_METHODS

    process = ServerProcess(
        SHIPPED_METHODS,
        tmp_path_factory.mktemp("limited") / "server.log",
        env={
            "SBUSR_MAX_BODY_BYTES": str(LIMIT),
            "SBUSR_HEADER_TIMEOUT_S": "1",
            "SBUSR_KEEPALIVE_TIMEOUT_S": "1",
            "SBUSR_BODY_TIMEOUT_S": "1",
            "SBUSR_CORS_ORIGINS": "https://app.example",
        },
    )
    yield process
    process.stop()


# --- time-outs ---------------------------------------------------------------------------


def test_a_connection_that_sends_nothing_is_closed(limited: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", limited.port)) as connection:
        assert closed_within(connection, 10.0)


def test_headers_that_never_end_are_cut_off(limited: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", limited.port)) as connection:
        connection.sendall(b"POST /rpc HTTP/1.1\r\nHost: x\r\n")
        assert closed_within(connection, 10.0)


def test_an_idle_keep_alive_connection_is_closed(limited: ServerProcess) -> None:
    wire = Wire(limited.port)
    try:
        wire.send(request(ECHO))
        assert wire.response()[0] == 200
        assert closed_within(wire.socket, 10.0)
    finally:
        wire.close()


def test_a_body_that_never_ends_is_cut_off(limited: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", limited.port)) as connection:
        connection.sendall(b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        assert closed_within(connection, 10.0)


# --- stalled output ------------------------------------------------------------------------


def pipeline_without_reading(port: int, requests: int, result_bytes: int) -> socket.socket:
    """Open a connection, send ``requests`` echo calls of ``result_bytes`` each, read nothing."""
    connection = socket.create_connection(("127.0.0.1", port))
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    body = json.dumps(
        {"jsonrpc": "2.0", "method": "echo", "params": ["x" * result_bytes], "id": 1}
    ).encode()
    payload = request(body) * requests
    sender = threading.Thread(target=_send_quietly, args=(connection, payload), daemon=True)
    sender.start()
    return connection


def _send_quietly(connection: socket.socket, payload: bytes) -> None:
    with contextlib.suppress(OSError):  # the server closed the connection: what tests wait for
        connection.sendall(payload)


@pytest.mark.parametrize(
    "env, reason",
    [
        ({"SBUSR_MAX_UNSENT_BYTES": "65536", "SBUSR_WRITE_TIMEOUT_S": "600"}, "MAX_UNSENT_BYTES"),
        ({"SBUSR_MAX_UNSENT_BYTES": "100000000", "SBUSR_WRITE_TIMEOUT_S": "1"}, "WRITE_TIMEOUT"),
    ],
)
def test_a_client_that_pipelines_and_never_reads_is_closed(
    start_server: StartServer, env: dict[str, str], reason: str
) -> None:
    server = start_server(env=env)
    connections = [pipeline_without_reading(server.port, 40, 200_000) for _ in range(3)]
    try:
        wait_for(
            lambda: re.search(
                rf"closed \d+ connections whose output stalled.*{reason}", server.log()
            ),
            timeout_s=20.0,
            message="stalled connections to be closed",
        )
        for connection in connections:
            assert closed_within(connection, 20.0)
        assert server.call("echo", ["still serving"])["result"] == "still serving"
    finally:
        for connection in connections:
            connection.close()


# --- the connection ceiling and accept errors ---------------------------------------------


def start_with_descriptor_limit(
    start_server: StartServer, limit: int, env: dict[str, str]
) -> ServerProcess:
    """Start a server whose processes may open ``limit`` descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        return start_server(env=env, wait=False)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_idle(port: int, count: int) -> list[socket.socket]:
    """Open ``count`` connections that send nothing."""
    return [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]


def test_idle_connections_beyond_the_descriptor_limit_do_not_deny_service(
    start_server: StartServer,
) -> None:
    server = start_with_descriptor_limit(start_server, 256, {})
    server.wait_until_serving()
    idle = open_idle(server.port, 400)
    try:
        for number in range(5):
            response = httpx.post(
                server.url + "/rpc",
                json={"jsonrpc": "2.0", "method": "echo", "params": [number], "id": number},
                timeout=5.0,
            )
            assert response.json()["result"] == number
        assert re.search(
            r"closed \d+ idle connections to make room at the ceiling of 128", server.log()
        )
    finally:
        for connection in idle:
            connection.close()


def open_slow_bodies(port: int, count: int) -> list[socket.socket]:
    """Open ``count`` connections that send headers and one byte of a 100-byte body."""
    connections = []
    for _ in range(count):
        connection = socket.create_connection(("127.0.0.1", port))
        with contextlib.suppress(OSError):  # refused at the ceiling: closed by the server
            connection.sendall(b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        connections.append(connection)
    return connections


def test_slow_request_bodies_at_the_ceiling_do_not_deny_service(
    start_server: StartServer,
) -> None:
    """Connections still sending their body (slowloris) make room for new ones as idle ones
    do, instead of holding every slot for the whole body time-out."""
    server = start_with_descriptor_limit(start_server, 256, {"SBUSR_BODY_TIMEOUT_S": "600"})
    server.wait_until_serving()
    slow = open_slow_bodies(server.port, 200)
    try:
        wait_for(
            lambda: re.search(
                r"refused \d+ connections at the ceiling|still sending a request body", server.log()
            ),
            message="the ceiling reached with no idle connection",
        )
        for number in range(5):
            response = httpx.post(
                server.url + "/rpc",
                json={"jsonrpc": "2.0", "method": "echo", "params": [number], "id": number},
                timeout=5.0,
            )
            assert response.json()["result"] == number
        assert re.search(
            r"closed \d+ connections still sending a request body to make room at the ceiling "
            r"of 128",
            server.log(),
        )
    finally:
        for connection in slow:
            connection.close()


def test_accept_errors_back_off_instead_of_flooding_the_log(start_server: StartServer) -> None:
    # a ceiling above the descriptor limit: accepting fails with EMFILE
    server = start_with_descriptor_limit(start_server, 256, {"SBUSR_MAX_CONNECTIONS": "5000"})
    server.wait_until_serving()
    idle = open_idle(server.port, 400)
    try:
        wait_for(lambda: "accept failed" in server.log(), message="the accept error line")
        time.sleep(0.5)  # hold the error for a while: a spinning loop would log on every turn
        lines = server.log().splitlines()
        assert len(lines) < 50, lines[-5:]
    finally:
        for connection in idle:
            connection.close()
    response = httpx.post(server.url + "/rpc", content=ECHO, timeout=10.0)
    assert response.json()["result"] == "hi"


# --- 413 in every over-limit case ----------------------------------------------------------


def assert_json_413(status: int, body: bytes) -> None:
    assert status == 413
    assert json.loads(body) == {
        "error": {"code": 413, "message": f"request body over {LIMIT} bytes"}
    }


def test_a_body_just_over_the_limit_is_413(limited: ServerProcess) -> None:
    wire = Wire(limited.port)
    try:
        wire.send(request(b"[" + b" " * LIMIT + b"]", extra=b"Origin: https://app.example\r\n"))
        status, headers, body = wire.response()
        assert_json_413(status, body)
        assert headers["access-control-allow-origin"] == "https://app.example"
    finally:
        wire.close()


def test_a_body_far_over_the_limit_is_413_not_a_reset(limited: ServerProcess) -> None:
    wire = Wire(limited.port)
    try:
        sender = threading.Thread(
            target=_send_quietly, args=(wire.socket, request(b"x" * (8 << 20))), daemon=True
        )
        sender.start()
        status, headers, body = wire.response()
        assert_json_413(status, body)
        assert headers["connection"] == "close"
        sender.join(10.0)
    finally:
        wire.close()


@pytest.mark.parametrize("size", [LIMIT + 1, 3 << 20])
def test_a_chunked_body_over_the_limit_is_413(limited: ServerProcess, size: int) -> None:
    wire = Wire(limited.port)
    try:
        head = b"POST /rpc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        pieces = [b"y" * 65536] * (size // 65536) + [b"y" * (size % 65536)]
        payload = head + chunked(*[piece for piece in pieces if piece])
        sender = threading.Thread(target=_send_quietly, args=(wire.socket, payload), daemon=True)
        sender.start()
        status, _, body = wire.response()
        assert_json_413(status, body)
        sender.join(10.0)
        wire.send(request(ECHO))  # the whole body was read: the connection serves on
        assert wire.response()[0] == 200
    finally:
        wire.close()


@pytest.mark.parametrize("path", [b"/api/jobs", b"/api/flow", b"/health_check", b"/nowhere"])
def test_every_route_answers_413_over_the_limit(limited: ServerProcess, path: bytes) -> None:
    wire = Wire(limited.port)
    try:
        wire.send(request(b"{" + b" " * (LIMIT + 100) + b"}", path=path))
        status, _, body = wire.response()
        assert_json_413(status, body)
    finally:
        wire.close()


def test_a_gzip_body_is_not_inflated(limited: ServerProcess) -> None:
    bomb = gzip.compress(b" " * 900_000)
    assert len(bomb) < LIMIT
    wire = Wire(limited.port)
    try:
        wire.send(request(bomb, extra=b"Content-Encoding: gzip\r\n"))
        status, _, body = wire.response()
        assert status == 200 and json.loads(body)["error"]["code"] == -32700
    finally:
        wire.close()


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 12x\r\n",
        b"Content-Length: 5, 6\r\n",
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: gzip\r\n",
    ],
)
def test_broken_framing_is_a_json_400(limited: ServerProcess, framing: bytes) -> None:
    wire = Wire(limited.port)
    try:
        wire.send(b"POST /rpc HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n{}")
        status, headers, body = wire.response()
        assert status == 400 and headers["content-type"] == "application/json"
        assert json.loads(body)["error"]["code"] == 400
        assert wire.closed_by_server()
    finally:
        wire.close()


# --- HEAD ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/health_check",
        "/sys/status",
        "/openapi.json",
        "/openrpc.json",
        "/metrics",
        "/docs",
        "/api/jobs",
    ],
)
def test_head_answers_where_get_does(limited: ServerProcess, path: str) -> None:
    got = limited.http.get(path)
    head = limited.http.head(path)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Type"] == got.headers["Content-Type"]


def test_head_of_a_browser_root_redirects_to_the_docs(limited: ServerProcess) -> None:
    head = limited.http.head("/", headers={"Accept": "text/html"})
    assert (head.status_code, head.headers["Location"]) == (302, "/docs")


def test_head_does_not_reload(limited: ServerProcess) -> None:
    generation = limited.status()["generation"]
    assert limited.http.head("/sys/reset").status_code == 405
    assert limited.status()["generation"] == generation


def test_openapi_lists_no_head(limited: ServerProcess) -> None:
    paths = limited.http.get("/openapi.json").json()["paths"]
    assert all("head" not in operations for operations in paths.values())


# --- the token rule ------------------------------------------------------------------------

#: The routes that need no token: the probes, and the docs page (which holds no data).
TOKEN_FREE = {"/health_check", "/docs"}


def test_only_the_documented_routes_need_no_token() -> None:
    services = Services(**dict.fromkeys(Services.__dataclass_fields__, cast(Any, None)))
    table = routes(Settings(auth_token="t"), services)
    free = {pattern for pattern, handler, _ in table if not getattr(handler, "requires_auth", True)}
    assert free - {"/ready"} == TOKEN_FREE  # /ready: the readiness probe, where it is served


def test_operations_and_discovery_state_the_token_rule() -> None:
    operations = (PROJECT_DIR / "docs" / "operations.md").read_text()
    row = next(line for line in operations.splitlines() if line.startswith("| `SBUSR_AUTH_TOKEN`"))
    assert all(f"`{path}`" in row for path in TOKEN_FREE), row
    discovery = (PROJECT_DIR / "docs" / "discovery.md").read_text()
    assert "needs no token" in discovery and "/health_check" in discovery


def test_with_a_token_only_the_probes_and_docs_answer_without_it(start_server: StartServer) -> None:
    server = start_server(env={"SBUSR_AUTH_TOKEN": "s3cret"})
    for path in ("/health_check", "/docs"):
        assert httpx.get(server.url + path).status_code == 200
        assert httpx.head(server.url + path).status_code == 200
    for path in ("/openapi.json", "/openrpc.json", "/metrics", "/sys/status", "/api/jobs"):
        assert httpx.get(server.url + path).status_code == 401
        assert httpx.head(server.url + path).status_code == 401


# --- log lines ---------------------------------------------------------------------------


def test_caller_strings_cannot_forge_log_lines(limited: ServerProcess) -> None:
    forged = "FORGED-LINE sbusr.access[1] GET /admin 200"
    answer = limited.call(f"no_such\n{forged}\r\x1b[2K")
    assert answer["error"]["code"] == -32601
    limited.call("warnlog", [f"from a method\n{forged}"])
    wire = Wire(limited.port)
    try:
        wire.send(request(ECHO, path=b"/rpc\x1bx"))
        wire.response()
    finally:
        wire.close()
    wait_for(
        lambda: "no_such\\n" in limited.log() and "from a method\\n" in limited.log(),
        message="the escaped lines",
    )
    assert not [line for line in limited.log().splitlines() if line.startswith("FORGED-LINE")]
    assert "\x1b" not in limited.log()
