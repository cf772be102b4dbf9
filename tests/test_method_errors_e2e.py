"""A method that raises is logged at ERROR with its request id; SBUSR_EXPOSE_ERRORS=0 hides
the exception's text from the caller (design.md error codes, docs/operations.md "Logging")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import ServerProcess, StartServer, wait_for

FAILING_METHODS = '''
import sqlalchemy as sa


def query(secret: str) -> None:
    """Run SQL on a table that does not exist: SQLAlchemy's error holds the SQL and params."""
    engine = sa.create_engine("sqlite://")
    with engine.connect() as connection:
        connection.execute(
            sa.text("SELECT * FROM no_such_table WHERE password = :secret"), {"secret": secret}
        )


async def query_later(secret: str) -> None:
    """The same from an ``async def`` method."""
    query(secret)
'''


@pytest.fixture
def failing_methods(methods_dir: Path) -> Path:
    (methods_dir / "failing.py").write_text(FAILING_METHODS)
    return methods_dir


def call(server: ServerProcess, method: str, request_id: str, params: Any) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "method": method, "params": params, "id": 7}
    response = server.post(body, headers={"X-Request-ID": request_id})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def log_lines_with(server: ServerProcess, text: str) -> list[str]:
    """The log lines holding ``text``, once at least one has arrived (workers log through
    their pipe, so the record may trail the response)."""

    def found() -> list[str]:
        return [line for line in server.log().splitlines() if text in line]

    lines: list[str] = wait_for(found, message=f"a log line with {text!r}")
    return lines


@pytest.mark.parametrize("method", ["failing.query", "failing.query_later"])
def test_a_method_that_raises_is_logged_at_error_with_its_request_id(
    start_server: StartServer, failing_methods: Path, method: str
) -> None:
    server = start_server(methods=failing_methods)
    answer = call(server, method, "req-raises-1", ["pa55word"])
    error = answer["error"]
    assert error["code"] == -32000
    assert error["data"]["type"] == "OperationalError"
    assert "no_such_table" in error["data"]["message"]  # exposed by default
    [line] = log_lines_with(server, f"method {method} raised OperationalError")
    assert " ERROR sbusr.calls[" in line
    assert line.endswith("request_id=req-raises-1")  # the record's first line
    log = server.log()
    after = log[log.index(f"method {method} raised") :]
    assert "Traceback (most recent call last)" in after
    assert "call_id=" in line


def test_expose_errors_off_keeps_the_sql_out_of_the_answer(
    start_server: StartServer, failing_methods: Path
) -> None:
    server = start_server(methods=failing_methods, env={"SBUSR_EXPOSE_ERRORS": "0"})
    answer = call(server, "failing.query", "req-hidden-2", ["pa55word"])
    error = answer["error"]
    assert error["code"] == -32000
    assert error["data"]["type"] == "OperationalError"
    message = error["data"]["message"]
    assert "no_such_table" not in message and "SELECT" not in message
    assert "pa55word" not in json.dumps(answer)
    assert "request_id=req-hidden-2" in message  # the pointer to the log record
    log_lines_with(server, "method failing.query raised OperationalError")
    assert "no_such_table" in server.log()  # the operator still sees it


def test_a_json_rpc_error_raised_on_purpose_is_logged_at_info_without_traceback(
    start_server: StartServer,
) -> None:
    server = start_server()
    answer = call(server, "greetings.refuse", "req-refuse-3", ["bob"])
    assert answer["error"]["code"] == 4004
    [line] = log_lines_with(server, "method greetings.refuse answered error 4004 (call_id=")
    assert " INFO sbusr.calls[" in line and "request_id=req-refuse-3" in line
    assert "Traceback" not in server.log()


def test_json_logs_carry_the_method_the_call_id_and_the_traceback(
    start_server: StartServer, failing_methods: Path
) -> None:
    server = start_server(methods=failing_methods, env={"SBUSR_LOG_FORMAT": "json"})
    call(server, "failing.query", "req-json-4", ["x"])
    [line] = log_lines_with(server, "method failing.query raised")
    record = json.loads(line)
    assert record["level"] == "ERROR" and record["logger"] == "sbusr.calls"
    assert record["request_id"] == "req-json-4"
    assert record["rpc_method"] == "failing.query"
    assert isinstance(record["call_id"], int) and record["call_id"] > 0
    assert "Traceback" in record["exception"]
