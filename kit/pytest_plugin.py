"""A pytest plugin: the real sbusr server on a methods folder, and an HTTP client for it.

Enable it in the ``conftest.py`` at the root of your tests::

    pytest_plugins = ["kit.pytest_plugin"]

Fixtures (module scope: one server per test module):

* ``sbusr_methods_dir``: the methods folder served; default the settings' folder
  (``SBUSR_METHODS_DIR``, else ``./methods``). Override it in a conftest to serve another one.
* ``sbusr_env``: extra environment variables of the server (``{"SBUSR_RPC_TIMEOUT": "5"}``),
  default none.
* ``sbusr_server``: a :class:`SbusrServer`: ``python run.py`` started as a subprocess on a free
  loopback port, ready (``/health_check`` answered 200), stopped after the module's tests.

Example::

    def test_greet(sbusr_server: SbusrServer) -> None:
        assert sbusr_server.call("greetings.greet", {"name": "Ada"}) == "Hello, Ada!"
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from wire.errors import JsonRpcError

__all__ = ["SbusrServer", "sbusr_env", "sbusr_methods_dir", "sbusr_server"]

PROJECT_DIR = Path(__file__).resolve().parent.parent

#: how long the server may take to answer /health_check, seconds
START_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class SbusrServer:
    """``python run.py`` as a subprocess, with an httpx client on it.

    Args:
        methods_dir: the methods folder (``SBUSR_METHODS_DIR``).
        log_path: file that receives the server's output (shown when it fails to start).
        env: extra environment variables.

    Attributes:
        url: ``http://127.0.0.1:<port>``.
        http: an ``httpx.Client`` with that base URL (e.g. ``server.http.get("/sys/status")``).

    Raises:
        RuntimeError: the server exited, or did not answer within :data:`START_TIMEOUT_S`
            (the message holds its log).
    """

    def __init__(self, methods_dir: Path, log_path: Path, env: dict[str, str] | None = None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SBUSR_")}
        environment.update(
            {
                "SBUSR_METHODS_DIR": str(Path(methods_dir).resolve()),
                "SBUSR_HOST": "127.0.0.1",
                "SBUSR_PORT": str(self.port),
                "SBUSR_DATABASE_URL": f"sqlite:///{log_path.with_suffix('.sqlite3')}",
                "PYTHONUNBUFFERED": "1",
            }
        )
        environment.update(env or {})
        self._log = open(log_path, "ab")  # noqa: SIM115 (closed by stop())
        self.process = subprocess.Popen(
            [sys.executable, str(PROJECT_DIR / "run.py")],
            cwd=PROJECT_DIR,
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.http = httpx.Client(base_url=self.url, timeout=30.0)
        try:
            self._wait_until_serving()
        except BaseException:
            self.stop()
            raise

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"sbusr exited with {self.process.returncode}:\n{self.log()}")
            try:
                if self.http.get("/health_check", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"sbusr did not answer in {START_TIMEOUT_S} s:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        """The server's output so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def response(self, method: str, params: Any = None, request_id: Any = 1) -> dict[str, Any]:
        """POST one request to ``/rpc`` and return the decoded response object (result or error).

        Raises:
            AssertionError: the HTTP status is not 200.
        """
        request: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
        if params is not None:
            request["params"] = params
        reply = self.http.post(
            "/rpc", content=json.dumps(request), headers={"Content-Type": "application/json"}
        )
        assert reply.status_code == 200, (reply.status_code, reply.text)
        answer: dict[str, Any] = reply.json()
        return answer

    def call(self, method: str, params: Any = None) -> Any:
        """Call ``method`` over HTTP and return its result.

        Raises:
            JsonRpcError: the response is an error (its ``code``, ``message``, ``data``).
        """
        answer = self.response(method, params)
        if "error" in answer:
            error = answer["error"]
            raise JsonRpcError(error["code"], error["message"], error.get("data"))
        return answer["result"]

    def stop(self, timeout_s: float = 30.0) -> int:
        """Stop the server (SIGTERM, SIGKILL after ``timeout_s`` seconds); return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.http.close()
        self._log.close()
        return self.process.returncode


@pytest.fixture(scope="module")
def sbusr_methods_dir() -> Path:
    """The methods folder ``sbusr_server`` serves (override in a conftest)."""
    import settings

    return settings.load().methods_dir


@pytest.fixture(scope="module")
def sbusr_env() -> dict[str, str]:
    """Extra environment variables of ``sbusr_server`` (override in a conftest)."""
    return {}


@pytest.fixture(scope="module")
def sbusr_server(
    sbusr_methods_dir: Path, sbusr_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SbusrServer]:
    """The real server on ``sbusr_methods_dir``, serving until the module's tests are done."""
    server = SbusrServer(
        sbusr_methods_dir, tmp_path_factory.mktemp("sbusr") / "server.log", sbusr_env
    )
    yield server
    server.stop()
