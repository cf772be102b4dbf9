"""``python run.py call``: the operators' command-line caller, over HTTP and over the bus."""

from __future__ import annotations

import json
import subprocess
import sys

from busclient.cli import parse_param
from tests.support import PROJECT_DIR, ServerProcess


def run_call(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROJECT_DIR / "run.py"), "call", *args],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_params_are_json_when_they_parse() -> None:
    assert [parse_param(t) for t in ("2", "[1,2]", '{"a":1}', "hello", '"x"', "true")] == [
        2,
        [1, 2],
        {"a": 1},
        "hello",
        "x",
        True,
    ]


def test_call_over_http_prints_the_result(shared_bus: tuple[ServerProcess, str]) -> None:
    done = run_call("--url", shared_bus[0].url + "/rpc", "add", "1", "2")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == 3


def test_call_over_the_bus_prints_the_result(shared_bus: tuple[ServerProcess, str]) -> None:
    done = run_call("--bus", "--url", shared_bus[1], "echo", "hello")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == "hello"


def test_error_is_printed_with_exit_code_1(shared_bus: tuple[ServerProcess, str]) -> None:
    done = run_call("--bus", "--url", shared_bus[1], "no.such")
    assert done.returncode == 1
    assert json.loads(done.stderr)["error"]["code"] == -32601


def test_named_params(shared_bus: tuple[ServerProcess, str]) -> None:
    done = run_call("--url", shared_bus[0].url + "/rpc", "--named", '{"a": 2, "b": 5}', "add")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == 7
