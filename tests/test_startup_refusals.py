"""Start-up refusals through ``run.py``: exit code 2 and one line naming the variable.

Each case starts ``python run.py`` as a subprocess with one setting that cannot work and
checks the exit code, the line and that no traceback was printed (design.md, "Settings").
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import SHIPPED_METHODS, StartServer, free_port, run_to_the_end


def run_server(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``run.py`` with the tests' defaults plus ``env``; it must stop by itself."""
    defaults = {
        "SBUSR_METHODS_DIR": str(SHIPPED_METHODS),
        "SBUSR_PORT": str(free_port()),
        "SBUSR_POOL_PROCESSES": "1",
        "SBUSR_SCHEDULER": "0",
    }
    return run_to_the_end(*args, env={**defaults, **env})


def assert_refused(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Exit code 2, one ERROR line holding each of ``expected``, no traceback; the line."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


def test_a_missing_methods_folder_is_refused() -> None:
    result = run_server({"SBUSR_METHODS_DIR": "/nonexistent"})
    assert_refused(result, "SBUSR_METHODS_DIR='/nonexistent'", "no such folder")


def test_a_methods_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "methods.py"
    file.write_text("")
    assert_refused(
        run_server({"SBUSR_METHODS_DIR": str(file)}), "SBUSR_METHODS_DIR", "not a folder"
    )


def test_a_redis_url_without_scheme_is_refused() -> None:
    result = run_server({"SBUSR_REDIS_URL": "localhost:6379"})
    assert_refused(result, "SBUSR_REDIS_URL='localhost:6379'", "expected redis://")


def test_the_password_of_a_refused_redis_url_is_masked() -> None:
    result = run_server({"SBUSR_REDIS_URL": "http://user:hunter2@localhost:6379"})
    assert_refused(result, "SBUSR_REDIS_URL=")
    assert "hunter2" not in result.stderr


def test_a_database_url_that_is_no_url_is_refused() -> None:
    result = run_server({"SBUSR_DATABASE_URL": "nonsense"})
    assert_refused(result, "SBUSR_DATABASE_URL='nonsense'", "expected a SQLAlchemy URL")


def test_a_database_of_an_unknown_kind_is_refused() -> None:
    result = run_server({"SBUSR_DATABASE_URL": "nosuchdb://host/db"})
    assert_refused(result, "SBUSR_DATABASE_URL", "unknown database 'nosuchdb'")


def test_a_database_driver_that_is_not_installed_is_refused() -> None:
    result = run_server({"SBUSR_DATABASE_URL": "postgresql+pg8000://u:pw@host/db"})
    line = assert_refused(result, "SBUSR_DATABASE_URL", "driver", "not installed")
    assert ":pw@" not in line


@pytest.fixture
def port_in_use() -> Iterator[int]:
    """A loopback port held by a listening socket for the test."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_port_in_use_is_refused(port_in_use: int) -> None:
    result = run_server({"SBUSR_PORT": str(port_in_use)})
    assert_refused(result, f"SBUSR_PORT={port_in_use}", "cannot listen on 127.0.0.1", "in use")


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("SBUSR_PORT", "abc", "expected an integer"),
        ("SBUSR_POOL_PROCESSES", "four", "expected an integer"),
        ("SBUSR_RPC_TIMEOUT", "soon", "expected a number"),
        ("SBUSR_DEBUG", "maybe", "expected 1/0"),
    ],
)
def test_a_typed_setting_that_does_not_parse_is_refused(
    variable: str, value: str, problem: str
) -> None:
    result = run_server({variable: value})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "invalid literal" not in result.stderr
    assert f"{variable}={value!r}: {problem}" in result.stderr


def test_protected_mode_refuses_an_open_address_without_a_token() -> None:
    result = run_server({"SBUSR_HOST": "0.0.0.0"})
    assert_refused(
        result,
        "SBUSR_HOST='0.0.0.0'",
        "protected mode",
        "SBUSR_AUTH_TOKEN",
        "SBUSR_ALLOW_UNAUTHENTICATED=1",
    )


def test_protected_mode_applies_to_the_host_option_too() -> None:
    assert_refused(run_server({}, "--host", "0.0.0.0"), "protected mode")


def test_protected_mode_lets_a_token_or_the_unsafe_setting_through(
    start_server: StartServer,
) -> None:
    with_token = start_server(env={"SBUSR_HOST": "0.0.0.0", "SBUSR_AUTH_TOKEN": "t0ken"})
    assert with_token.http.get("/health_check").status_code == 200
    unsafe = start_server(env={"SBUSR_HOST": "0.0.0.0", "SBUSR_ALLOW_UNAUTHENTICATED": "1"})
    assert unsafe.call("echo", ["x"])["result"] == "x"
    assert "without SBUSR_AUTH_TOKEN" in unsafe.log()


def test_an_unknown_variable_is_warned_about_with_the_closest_name(
    start_server: StartServer,
) -> None:
    server = start_server(env={"SBUSR_POOL_PROCESS": "4", "SBUSR_ZZZ_QQQ": "1"})
    log = server.log()
    assert "WARNING" in log
    assert "unknown variable SBUSR_POOL_PROCESS ignored: did you mean SBUSR_POOL_PROCESSES?" in log
    assert "unknown variable SBUSR_ZZZ_QQQ ignored: no setting has this name" in log
    assert len(server.status()["workers"]) == 2  # the typo did not set 4 workers


# Tornado's bind_sockets leaves the socket whose bind failed to the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_port_taken_after_the_checks_still_exits_2_without_traceback(
    port_in_use: int, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio
    import gc

    import settings
    from server.main import serve

    loaded = settings.Settings(
        port=port_in_use, methods_dir=SHIPPED_METHODS, pool_processes=1, scheduler=False
    )
    assert asyncio.run(serve(loaded)) == 2
    assert f"cannot start: SBUSR_PORT={port_in_use}: cannot listen on 127.0.0.1" in caplog.text
    caplog.clear()  # the records hold the error, whose context holds that socket
    gc.collect()  # its warning comes now, under this test's filter
