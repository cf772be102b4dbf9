"""``run.py --reload``: a saved methods file is served without a reset; a broken one is not.

The real server runs as a subprocess on a private copy of the methods; the test edits a file
as an editor would and polls (with a deadline) until the server answers with the new code.
"""

from __future__ import annotations

from pathlib import Path

from server.reloader import describe_import_error
from tests.support import ServerProcess, StartServer, wait_for

RELOAD_WAIT_S = 30.0


def write_method(path: Path, body: str) -> None:
    """Save a methods module the way an editor does: a new file renamed over the old one."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(body)
    temporary.replace(path)


def served_version(server: ServerProcess) -> object:
    """The result of ``live.version`` now (None when it answers an error)."""
    return server.call("live.version").get("result")


def test_reload_serves_an_edited_file_and_keeps_the_old_code_when_broken(
    start_server: StartServer, methods_dir: Path
) -> None:
    live = methods_dir / "live.py"
    write_method(live, "def version():\n    return 1\n")
    server = start_server(args=["--reload"])
    assert served_version(server) == 1
    assert f"docs at {server.url}/docs" in server.log()

    write_method(live, "def version():\n    return 2\n")
    wait_for(lambda: served_version(server) == 2, RELOAD_WAIT_S, message="version 2 served")

    write_method(live, "def version():\n    return 2 +\n")
    wait_for(
        lambda: "cannot import methods.live" in server.log(),
        RELOAD_WAIT_S,
        message="the import error in the log",
    )
    error_line = next(
        line for line in server.log().splitlines() if "cannot import methods.live" in line
    )
    assert f"{live}, line 2" in error_line and "SyntaxError" in error_line
    assert "keeps serving" in server.log()
    assert served_version(server) == 2

    write_method(live, "def version():\n    return 3\n")
    wait_for(lambda: served_version(server) == 3, RELOAD_WAIT_S, message="version 3 served")


def test_without_reload_an_edit_is_not_served(start_server: StartServer, methods_dir: Path) -> None:
    live = methods_dir / "live.py"
    write_method(live, "def version():\n    return 1\n")
    server = start_server()
    write_method(live, "def version():\n    return 2\n")
    assert server.http.get("/sys/reset").status_code == 200  # a reload happens only on request
    assert served_version(server) == 2
    assert "reloading on changes" not in server.log()


def test_import_error_line_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text("def price():\n    return (\n")
    error = {"module": "methods.shop", "type": "SyntaxError", "message": "'(' was never closed"}
    line = describe_import_error(tmp_path, error)
    assert line.startswith(f"methods.shop ({tmp_path / 'shop.py'}, line 2): SyntaxError: ")


def test_import_error_line_prefers_what_the_worker_sent(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("x = undefined_name\n")
    error: dict[str, object] = {
        "module": "methods.pkg",
        "type": "NameError",
        "message": "name 'undefined_name'",
    }
    assert f"({tmp_path / 'pkg' / '__init__.py'}):" in describe_import_error(tmp_path, error)
    error.update(file="/elsewhere/pkg/__init__.py", line=1)
    assert "(/elsewhere/pkg/__init__.py, line 1): NameError" in describe_import_error(
        tmp_path, error
    )
