"""run.py's command line: version, bad settings, methods that fail to import."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support import run_to_the_end


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_to_the_end(*args, env=env)


def test_version() -> None:
    result = run("-V")
    assert result.returncode == 0
    assert result.stdout.startswith("sbusr ")


def test_invalid_setting_names_the_variable() -> None:
    result = run(env={"SBUSR_PORT": "eighty"})
    assert result.returncode == 2
    assert "SBUSR_PORT='eighty'" in result.stderr


def test_no_web_server_needs_the_bus() -> None:
    result = run("-W")
    assert result.returncode == 2
    assert "SBUSR_REDIS_URL" in result.stderr


def test_methods_that_fail_to_import_stop_the_start(tmp_path: Path) -> None:
    (tmp_path / "__init__.py").write_text("raise ImportError('missing dependency xyz')\n")
    result = run("--methods", str(tmp_path), "--port", "0")
    assert result.returncode == 1
    assert "missing dependency xyz" in result.stderr


def test_help_lists_the_reload_option() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "--reload" in result.stdout and "methods file changes" in result.stdout
