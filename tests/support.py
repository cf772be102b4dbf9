"""Helpers for end-to-end tests: run ``python run.py`` as a subprocess and talk to it.

``ServerProcess`` starts the real server on a free loopback port with its own methods
folder and environment, waits (a poll with a deadline) until ``/health_check`` answers,
and stops it with a signal. Its log (stderr) is kept in a file for assertions and for
the failure message when it does not start.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx

PROJECT_DIR = Path(__file__).resolve().parent.parent
SHIPPED_METHODS = PROJECT_DIR / "methods"

__all__ = [
    "ServerProcess",
    "StartServer",
    "free_port",
    "run_to_the_end",
    "in_background",
    "wait_for",
    "copy_methods",
    "flushed_redis_db",
    "claim_redis_db",
    "live_other_run",
    "owner_mark",
    "OWNER_KEY",
    "PROJECT_DIR",
]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run_to_the_end(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python run.py *args`` until it exits (at most 60 s); its output captured as text.

    The environment is this process's without any ``SBUSR_*`` variable, plus ``env``.
    """
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SBUSR_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, str(PROJECT_DIR / "run.py"), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_DIR,
    )


def in_background(function: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
    """Run ``function(*args)`` in a thread of its own; return its future."""
    executor = concurrent.futures.ThreadPoolExecutor(1)
    future = executor.submit(function, *args)
    executor.shutdown(wait=False)
    return future


def wait_for(
    condition: Callable[[], Any],
    timeout_s: float = 10.0,
    interval_s: float = 0.02,
    message: str = "condition",
) -> Any:
    """Poll ``condition()`` until it returns a truthy value; return that value.

    Raises:
        AssertionError: ``timeout_s`` seconds passed first.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.1f} s waiting for {message}")
        time.sleep(interval_s)


#: Marks a Redis db as the tests': value ``"<host>:<pid>"`` of the test run that uses it.
OWNER_KEY = "sbusr-test:owner"


def owner_mark() -> str:
    """The :data:`OWNER_KEY` value of this test run: ``"<host>:<pid>"``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def live_other_run(owner: str) -> bool:
    """Tell whether ``owner`` (an OWNER_KEY value) names another test run still alive here."""
    host, _, pid_text = owner.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_redis_db(url: str) -> None:
    """Flush the Redis db of ``url`` for the tests, if it is theirs; mark it as theirs.

    A db is the tests' when it is empty, or holds :data:`OWNER_KEY` of this run or of a run that
    has ended. Anything else (keys the tests did not write, or a db another live test run uses)
    fails the test with a message saying which environment variable picks another db: the tests
    never flush data they did not write.
    """
    import pytest
    import redis

    client = redis.Redis.from_url(url)
    try:
        mark = client.get(OWNER_KEY)
        owner = mark.decode() if isinstance(mark, bytes) else None
        if owner is None and client.dbsize():
            pytest.fail(
                f"the Redis db {url} holds keys the tests did not write; refusing to flush it. "
                "Point the tests at an empty db (tests/README.md lists the variables).",
                pytrace=False,
            )
        if owner is not None and live_other_run(owner):
            pytest.fail(
                f"the Redis db {url} is in use by another test run ({owner})", pytrace=False
            )
        client.flushdb()
        client.set(OWNER_KEY, owner_mark())
    except redis.RedisError as exc:
        pytest.fail(f"Redis is required at {url} but cannot be reached: {exc}", pytrace=False)
    finally:
        client.close()


def flushed_redis_db(url: str) -> Iterator[str]:
    """Fixture body: yield ``url`` (a Redis db of the tests' own), flushed before and after.

    Before: :func:`claim_redis_db` (refuses a db holding keys the tests did not write). After:
    flushed, the owner mark kept. Fails the test with a clear message when Redis cannot be
    reached.
    """
    import redis

    claim_redis_db(url)
    yield url
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
        client.set(OWNER_KEY, owner_mark())
    finally:
        client.close()


def copy_methods(destination: Path) -> Path:
    """Copy the shipped example methods into ``destination`` (a new folder); return it."""
    shutil.copytree(SHIPPED_METHODS, destination, ignore=shutil.ignore_patterns("__pycache__"))
    return destination


class ServerProcess:
    """The sbusr server as a subprocess.

    Args:
        methods_dir: folder of the methods package (SBUSR_METHODS_DIR).
        log_path: file that receives the server's stderr.
        env: extra environment variables (strings), e.g. ``{"SBUSR_RPC_TIMEOUT": "1"}``.
        args: extra command-line arguments for run.py.
        wait: wait until /health_check answers (False: tests that expect a failed start).
        own_group: start the server in a process group of its own (tests that signal the
            whole group, as systemd or ``docker stop`` do).
    """

    def __init__(
        self,
        methods_dir: Path,
        log_path: Path,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        wait: bool = True,
        port: int | None = None,
        own_group: bool = False,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith("SBUSR_")
        }
        environment.update(
            {
                "SBUSR_METHODS_DIR": str(methods_dir),
                "SBUSR_PORT": str(self.port),
                "SBUSR_HOST": "127.0.0.1",
                "SBUSR_POOL_PROCESSES": "2",
                "PYTHONUNBUFFERED": "1",
                # each server its own job database, next to its log
                "SBUSR_DATABASE_URL": "sqlite:///{}".format(log_path.with_suffix(".jobs.sqlite3")),
            }
        )
        environment.update(env or {})
        # open for the life of the process: closed by stop()
        self._log_file = open(log_path, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, str(PROJECT_DIR / "run.py"), *(args or [])],
            cwd=PROJECT_DIR,
            env=environment,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            process_group=0 if own_group else None,
        )
        self.http = httpx.Client(base_url=self.url, timeout=30.0)
        if wait:
            self.wait_until_serving()

    def wait_until_serving(self, timeout_s: float = 30.0) -> None:
        """Poll /health_check until it answers 200; fail with the log if the process ends first."""

        def serving() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"server exited with {self.process.returncode} before serving:\n{self.log()}"
                )
            try:
                return httpx.get(self.url + "/health_check", timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(serving, timeout_s, message="the server to answer /health_check")

    def log(self) -> str:
        """The server's output so far."""
        self._log_file.flush()
        return self.log_path.read_text(errors="replace")

    def post(self, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        """POST ``body`` to /rpc: bytes/str as they are, anything else encoded as JSON."""
        content = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return self.http.post("/rpc", content=content, headers=headers)

    def call(self, method: str, params: Any = None, request_id: Any = 1) -> dict[str, Any]:
        """Send one request and return the decoded response object."""
        request: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
        if params is not None:
            request["params"] = params
        response = self.post(request)
        assert response.status_code == 200, (response.status_code, response.text)
        answer: dict[str, Any] = response.json()
        return answer

    def status(self) -> dict[str, Any]:
        """GET /sys/status, decoded."""
        status: dict[str, Any] = self.http.get("/sys/status").json()
        return status

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit; return the exit code (kills after ``timeout_s``)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.http.close()
        self._log_file.close()
        return self.process.returncode


class StartServer(Protocol):
    """The ``start_server`` fixture: start a :class:`ServerProcess`, stopped after the test.

    Args:
        env: extra environment variables, e.g. ``{"SBUSR_RPC_TIMEOUT": "1"}``.
        args: extra command-line arguments for run.py.
        methods: the methods folder; default the test's private copy.
        wait: wait until the server answers ``/health_check``.
    """

    def __call__(
        self,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        methods: Path | None = None,
        wait: bool = True,
    ) -> ServerProcess: ...
