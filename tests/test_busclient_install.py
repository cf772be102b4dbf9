"""busclient installs with pip from the repository into an application's own environment."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import PROJECT_DIR

#: bound of each pip step, seconds (a fresh venv and a build from this folder)
STEP_TIMEOUT_S = 300


def run(command: list[str], cwd: Path) -> str:
    """Run a command; fail with its output when it fails."""
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=STEP_TIMEOUT_S
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def requirement(name: str) -> str:
    """The pinned ``name==version`` line of requirements.txt."""
    for line in (PROJECT_DIR / "requirements.txt").read_text().splitlines():
        if line.lower().startswith(name + "=="):
            return line.strip()
    raise AssertionError(f"{name} is not pinned in requirements.txt")


def test_pip_installs_busclient_into_a_fresh_venv(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: the build leaves build/ and *.egg-info behind
    source.mkdir()
    for name in ("busclient", "wire"):
        shutil.copytree(
            PROJECT_DIR / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(PROJECT_DIR / "pyproject.toml", source)
    (source / "docs").mkdir()
    shutil.copy(PROJECT_DIR / "docs" / "protocol.md", source / "docs")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "-q", "--no-deps", str(source)], tmp_path)
    run(
        [python, "-m", "pip", "install", "-q", requirement("redis"), requirement("hiredis")],
        tmp_path,
    )
    code = (
        "import busclient, wire, sys; from busclient import BusClient, BusKeys; "
        "assert 'settings' not in sys.modules; "
        "print(busclient.__file__); print(BusKeys().requests)"
    )
    output = run([python, "-I", "-c", code], tmp_path).splitlines()
    assert output[0].startswith(str(venv)), output
    assert output[1] == "sbusr:rpc"
