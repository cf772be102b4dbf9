"""What the ``POST /rpc`` message delegate handles by hand, on the wire (raw sockets).

The delegate runs below ``tornado.web`` (server/http/rpc.py): these tests hold it to what the
``tornado.web`` path did: HTTP/1.0 and keep-alive, chunked bodies, ``Expect: 100-continue``,
413 and 401 as JSON after the body, no gzip decoding, the usual response headers.
"""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import Iterator
from typing import Any, BinaryIO

import pytest

from tests.support import SHIPPED_METHODS, ServerProcess

TOKEN = "s3cret"
MAX_BODY_BYTES = 300
ECHO = b'{"jsonrpc":"2.0","method":"echo","params":["hi"],"id":7}'
AUTH = f"Authorization: Bearer {TOKEN}\r\n".encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server with a token and a small body limit, for the whole module."""
    process = ServerProcess(
        SHIPPED_METHODS,
        tmp_path_factory.mktemp("delegate") / "server.log",
        env={"SBUSR_AUTH_TOKEN": TOKEN, "SBUSR_MAX_BODY_BYTES": str(MAX_BODY_BYTES)},
    )
    yield process
    process.stop()


class Wire:
    """One TCP connection to the server: send raw bytes, read whole HTTP/1.x responses."""

    def __init__(self, port: int) -> None:
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file: BinaryIO = self.socket.makefile("rb")

    def send(self, data: bytes) -> None:
        self.socket.sendall(data)

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """Read one response: (status, headers with lower-case names, body)."""
        status_line = self.file.readline()
        assert status_line.startswith(b"HTTP/1.1 "), status_line
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self.file.read(int(headers.get("content-length", "0")))
        return status, headers, body

    def closed_by_server(self) -> bool:
        """True when the server closed the connection (EOF, or a reset)."""
        try:
            return self.file.read(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.file.close()
        self.socket.close()


@pytest.fixture
def wire(server: ServerProcess) -> Iterator[Wire]:
    connection = Wire(server.port)
    yield connection
    connection.close()


def post(body: bytes, extra: bytes = AUTH, version: bytes = b"HTTP/1.1") -> bytes:
    return (
        b"POST /rpc "
        + version
        + b"\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def decoded(body: bytes) -> Any:
    return json.loads(body)


def test_keep_alive_serves_many_requests_on_one_connection(wire: Wire) -> None:
    for number in range(3):
        wire.send(post(ECHO.replace(b'"id":7', b'"id":%d' % number)))
        status, headers, body = wire.response()
        assert status == 200
        assert decoded(body) == {"jsonrpc": "2.0", "result": "hi", "id": number}
        assert "connection" not in headers


def test_pipelined_requests_are_answered_in_order(wire: Wire) -> None:
    wire.send(post(ECHO) + post(ECHO.replace(b"hi", b"ho")))
    assert decoded(wire.response()[2])["result"] == "hi"
    assert decoded(wire.response()[2])["result"] == "ho"


def test_response_headers_match_the_other_routes(wire: Wire) -> None:
    wire.send(post(ECHO, AUTH + b"X-Request-ID: wire-1\r\n"))
    status, headers, body = wire.response()
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == str(len(body))
    assert headers["x-request-id"] == "wire-1"
    assert headers["server"].startswith("TornadoServer/")
    assert headers["date"].endswith(" GMT")


def test_http_1_0_without_keep_alive_is_answered_then_closed(wire: Wire) -> None:
    wire.send(post(ECHO, version=b"HTTP/1.0"))
    status, headers, body = wire.response()
    assert status == 200 and decoded(body)["result"] == "hi"
    assert wire.closed_by_server()


def test_http_1_0_with_keep_alive_stays_open(wire: Wire) -> None:
    for _ in range(2):
        wire.send(post(ECHO, AUTH + b"Connection: keep-alive\r\n", version=b"HTTP/1.0"))
        status, headers, body = wire.response()
        assert status == 200 and decoded(body)["result"] == "hi"
        assert headers["connection"] == "Keep-Alive"


def test_connection_close_is_honoured(wire: Wire) -> None:
    wire.send(post(ECHO, AUTH + b"Connection: close\r\n"))
    status, headers, _ = wire.response()
    assert status == 200 and headers["connection"] == "close"
    assert wire.closed_by_server()


def test_chunked_request_body(wire: Wire) -> None:
    head = b"POST /rpc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" + AUTH + b"\r\n"
    wire.send(head + chunked(ECHO[:10], ECHO[10:30], ECHO[30:]))
    status, _, body = wire.response()
    assert status == 200 and decoded(body) == {"jsonrpc": "2.0", "result": "hi", "id": 7}


def test_chunked_body_over_the_limit_is_a_json_413_and_the_connection_lives(wire: Wire) -> None:
    head = b"POST /rpc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" + AUTH + b"\r\n"
    wire.send(head + chunked(b"x" * 200, b"y" * 200))
    status, headers, body = wire.response()
    assert status == 413 and headers["content-type"] == "application/json"
    assert decoded(body)["error"]["code"] == 413
    wire.send(post(ECHO))
    assert wire.response()[0] == 200


def test_body_over_the_limit_is_a_json_413(wire: Wire) -> None:
    wire.send(post(b"[" + b" " * MAX_BODY_BYTES + b"]"))
    status, _, body = wire.response()
    assert status == 413
    assert decoded(body) == {
        "error": {"code": 413, "message": f"request body over {MAX_BODY_BYTES} bytes"}
    }


def test_declared_length_far_over_the_limit_is_413_at_once_and_closed(wire: Wire) -> None:
    wire.send(b"POST /rpc HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Length: 9000000\r\n\r\n{")
    status, _, body = wire.response()
    assert status == 413 and decoded(body)["error"]["code"] == 413
    assert wire.closed_by_server()


def test_expect_100_continue_then_the_answer(wire: Wire) -> None:
    head = post(ECHO, AUTH + b"Expect: 100-continue\r\n")
    headers_end = head.index(b"\r\n\r\n") + 4
    wire.send(head[:headers_end])
    assert wire.file.readline() == b"HTTP/1.1 100 (Continue)\r\n"
    assert wire.file.readline() == b"\r\n"
    wire.send(head[headers_end:])
    status, _, body = wire.response()
    assert status == 200 and decoded(body)["result"] == "hi"


def test_wrong_token_is_a_json_401_after_the_body(wire: Wire) -> None:
    # The 401 waits for the body: the client is told to continue, sends it, then reads 401.
    head = post(ECHO, b"Authorization: Bearer wrong\r\nExpect: 100-continue\r\n")
    headers_end = head.index(b"\r\n\r\n") + 4
    wire.send(head[:headers_end])
    assert wire.file.readline() == b"HTTP/1.1 100 (Continue)\r\n"
    assert wire.file.readline() == b"\r\n"
    wire.send(head[headers_end:])
    status, headers, body = wire.response()
    assert status == 401
    assert headers["www-authenticate"] == 'Bearer realm="sbusr"'
    assert decoded(body) == {"error": {"code": 401, "message": "missing or wrong bearer token"}}
    wire.send(post(ECHO))  # the connection lives on
    assert wire.response()[0] == 200


def test_missing_token_is_401_even_for_a_body_over_the_limit(wire: Wire) -> None:
    wire.send(post(b"x" * (MAX_BODY_BYTES + 10), extra=b""))
    assert wire.response()[0] == 401


def test_notification_is_204_without_body_or_content_type(wire: Wire) -> None:
    wire.send(post(b'{"jsonrpc":"2.0","method":"echo","params":["n"]}'))
    status, headers, body = wire.response()
    assert status == 204 and body == b""
    assert "content-type" not in headers and "content-length" not in headers
    wire.send(post(ECHO))  # no stray bytes were left on the connection
    assert decoded(wire.response()[2])["id"] == 7


def test_gzip_bodies_are_not_decoded(wire: Wire) -> None:
    wire.send(post(gzip.compress(ECHO), AUTH + b"Content-Encoding: gzip\r\n"))
    status, _, body = wire.response()
    assert status == 200 and decoded(body)["error"]["code"] == -32700


def test_root_path_and_query_string_reach_the_delegate(wire: Wire) -> None:
    for target in (b"/", b"/rpc?x=1"):
        wire.send(post(ECHO).replace(b"POST /rpc ", b"POST " + target + b" ", 1))
        status, _, body = wire.response()
        assert status == 200 and decoded(body)["result"] == "hi", target


def test_other_methods_on_rpc_still_answer_405_from_the_application(wire: Wire) -> None:
    wire.send(b"PUT /rpc HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Length: 0\r\n\r\n")
    status, headers, body = wire.response()
    assert status == 405 and headers["allow"] == "POST"
    assert decoded(body)["error"]["code"] == 405
