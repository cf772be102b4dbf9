"""deploy/: the Dockerfile's entry command serves (built and run when Docker answers, else run
as a plain process), and the compose, Kubernetes and systemd files say what operations.md says."""

from __future__ import annotations

import configparser
import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import settings
from tests.support import PROJECT_DIR, free_port, wait_for

DEPLOY = PROJECT_DIR / "deploy"
TOKEN = "deploy-test-token"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``[(INSTRUCTION, arguments), ...]`` of deploy/Dockerfile, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def image_environment() -> dict[str, str]:
    """The variables the Dockerfile's ENV lines set (``KEY=value`` pairs)."""
    environment: dict[str, str] = {}
    for keyword, arguments in dockerfile_instructions():
        if keyword == "ENV":
            for pair in shlex.split(arguments):
                key, _, value = pair.partition("=")
                environment[key] = value
    return environment


def exec_form(keyword: str) -> list[str]:
    """The JSON array of the last ``keyword`` instruction (exec form, required)."""
    arguments = [args for kw, args in dockerfile_instructions() if kw == keyword][-1]
    value = json.loads(arguments)
    assert isinstance(value, list), f"{keyword} must use the exec form (a JSON array)"
    return [str(item) for item in value]


def healthcheck_command() -> list[str]:
    [arguments] = [args for kw, args in dockerfile_instructions() if kw == "HEALTHCHECK"]
    _, _, command = arguments.partition("CMD ")
    return [str(item) for item in json.loads(command)]


def with_our_python(command: list[str]) -> list[str]:
    """``command`` with the image's ``python`` replaced by the interpreter of the tests."""
    return [sys.executable if command[0] == "python" else command[0], *command[1:]]


def test_the_image_runs_the_server_as_pid_1_in_exec_form_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0][0] == "FROM" and "slim" in instructions[0][1]
    users = [args for kw, args in instructions if kw == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert exec_form("ENTRYPOINT")[:2] == ["python", "run.py"]
    assert "/health_check" in " ".join(healthcheck_command())


@pytest.fixture
def container_environment(tmp_path: Path) -> dict[str, str]:
    """What the container's process sees: the image's ENV, a token, a free port."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SBUSR_")}
    environment.update(image_environment())
    environment.update(
        {
            "SBUSR_PORT": str(free_port()),
            "SBUSR_AUTH_TOKEN": TOKEN,
            "SBUSR_POOL_PROCESSES": "1",
            "SBUSR_DATABASE_URL": f"sqlite:///{tmp_path / 'jobs.sqlite3'}",
        }
    )
    return environment


@pytest.fixture
def entry_process(
    container_environment: dict[str, str], tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """The image's ENTRYPOINT + CMD run as a plain process in the project folder (= /app)."""
    command = with_our_python(exec_form("ENTRYPOINT") + exec_form("CMD"))
    log_path = tmp_path / "entry.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=PROJECT_DIR, env=container_environment, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{container_environment['SBUSR_PORT']}"
    yield process, url, log_path
    if process.poll() is None:
        process.kill()
        process.wait(30)


def test_the_entry_command_serves_ready_and_stops_on_sigterm(
    entry_process: tuple[subprocess.Popen[bytes], str, Path],
    container_environment: dict[str, str],
) -> None:
    process, url, log_path = entry_process

    def ready() -> bool:
        assert process.poll() is None, log_path.read_text()
        try:
            return httpx.get(url + "/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, timeout_s=60, message="the entry command to be ready")
    health = subprocess.run(
        with_our_python(healthcheck_command()), env=container_environment, timeout=30
    )
    assert health.returncode == 0
    call = httpx.post(
        url + "/rpc",
        json={"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 1},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert call.json()["result"] == 3
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert lines and all("time" in line for line in lines)  # SBUSR_LOG_FORMAT=json
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0


def test_the_image_refuses_to_start_without_a_token(
    container_environment: dict[str, str],
) -> None:
    del container_environment["SBUSR_AUTH_TOKEN"]
    command = with_our_python(exec_form("ENTRYPOINT") + exec_form("CMD"))
    result = subprocess.run(
        command, cwd=PROJECT_DIR, env=container_environment, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "protected mode" in result.stderr


def docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not docker_answers(), reason="no Docker daemon here")
def test_the_image_builds_and_serves_ready() -> None:
    tag = f"sbusr-test:{os.getpid()}"
    port = free_port()
    subprocess.run(
        ["docker", "build", "-f", "deploy/Dockerfile", "-t", tag, "."],
        cwd=PROJECT_DIR, check=True, timeout=900,
    )  # fmt: skip
    container = subprocess.run(
        ["docker", "run", "-d", "-p", f"127.0.0.1:{port}:8080", "-e", f"SBUSR_AUTH_TOKEN={TOKEN}",
         tag],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout_s=120, message="the container to be ready")
        subprocess.run(["docker", "stop", "-t", "45", container], check=True, timeout=120)
        state = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.ExitCode}}", container],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        assert state.stdout.strip() == "0"
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


def test_compose_runs_sbusr_with_redis_and_a_required_token() -> None:
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) >= {"sbusr", "redis"}
    sbusr = services["sbusr"]
    assert sbusr["build"]["dockerfile"] == "deploy/Dockerfile"
    assert sbusr["environment"]["SBUSR_REDIS_URL"].startswith("redis://redis:")
    assert ":?" in sbusr["environment"]["SBUSR_AUTH_TOKEN"]  # compose refuses to start without
    assert sbusr["depends_on"]["redis"]["condition"] == "service_healthy"
    assert settings.unknown_variables(sbusr["environment"]) == []


def test_kubernetes_probes_liveness_on_health_check_and_readiness_on_ready() -> None:
    yaml = pytest.importorskip("yaml")
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text()))
    [deployment] = [d for d in documents if d["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health_check"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    names = {variable["name"]: "x" for variable in container["env"]}
    assert "SBUSR_AUTH_TOKEN" in names and settings.unknown_variables(names) == []
    assert any(d["kind"] == "Service" for d in documents)


def test_the_systemd_unit_drains_on_sigterm_and_restarts_on_failure() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keep the keys' case
    unit.read(DEPLOY / "sbusr.service")
    service = unit["Service"]
    assert service["KillMode"] == "mixed"
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2"
    assert service["EnvironmentFile"] == "/etc/sbusr/sbusr.env"
    assert float(service["TimeoutStopSec"]) > settings.Settings().shutdown_grace_s
    assert "run.py" in service["ExecStart"]
    environment = dict(
        line.split("=", 1)
        for line in (DEPLOY / "sbusr.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert settings.unknown_variables(environment) == []
    assert settings.load(environment).expose_errors is False
