"""Shared fixtures: a factory of real server subprocesses, a private copy of the methods."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import SHIPPED_METHODS, ServerProcess, StartServer, copy_methods

# the testing kit's fixtures (sbusr_server...), as a user's conftest enables them
pytest_plugins = ["kit.pytest_plugin"]


@pytest.fixture
def methods_dir(tmp_path: Path) -> Path:
    """A private copy of the shipped example methods (tests may edit it)."""
    return copy_methods(tmp_path / "methods")


@pytest.fixture
def start_server(tmp_path: Path, methods_dir: Path) -> Iterator[StartServer]:
    """Factory: ``start_server(env={...}, args=[...], methods=path)`` -> a serving ServerProcess.

    Every server started is stopped (SIGTERM, then SIGKILL) when the test ends.
    """
    started: list[ServerProcess] = []
    numbers = itertools.count(1)

    def start(
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        methods: Path | None = None,
        wait: bool = True,
    ) -> ServerProcess:
        log_path = tmp_path / f"server-{next(numbers)}.log"
        server = ServerProcess(methods or methods_dir, log_path, env=env, args=args, wait=wait)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    """One server on the example methods, with the default settings of the tests."""
    return start_server()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server on the shipped methods for a whole test module: for tests that change nothing."""
    server = ServerProcess(SHIPPED_METHODS, tmp_path_factory.mktemp("shared") / "server.log")
    yield server
    server.stop()
