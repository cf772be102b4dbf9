"""Log lines an operator reads: JSON timestamps to the millisecond, APScheduler kept quiet
under ``-v``, a refused reload's workers stopped at INFO (not "worker died")."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support import ServerProcess, StartServer, wait_for

ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d\Z")


def test_json_log_times_have_milliseconds(start_server: StartServer) -> None:
    server = start_server(env={"SBUSR_LOG_FORMAT": "json"})
    records = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    assert records, server.log()
    for record in records:
        assert ISO_MS.match(record["time"]), record["time"]


def run_a_job(server: ServerProcess) -> dict[str, Any]:
    """Add an hourly job, run it once now, wait until its run is recorded; its state."""
    job = {
        "id": "quiet",
        "method": "greetings.greet",
        "params": {"name": "Ada"},
        "interval_s": 3600,
    }
    added = server.http.post("/api/jobs", json=job)
    assert added.status_code == 201, added.text
    assert server.http.post("/api/jobs/quiet/run").status_code == 202

    def ran() -> dict[str, Any] | None:
        state: dict[str, Any] = server.http.get("/api/jobs/quiet").json()["state"]
        return state if state["runs"] >= 1 and state["last_run_end"] else None

    state: dict[str, Any] = wait_for(ran, message="the job's run")
    return state


def apscheduler_lines(server: ServerProcess) -> list[str]:
    return [line for line in server.log().splitlines() if " apscheduler." in line]


@pytest.mark.parametrize(("flag", "chatty"), [("-v", False), ("-vv", True)])
def test_apscheduler_talks_only_when_asked(
    start_server: StartServer, flag: str, chatty: bool
) -> None:
    server = start_server(args=[flag], env={"SBUSR_SCHEDULER_POLL_MS": "100"})
    run_a_job(server)
    if chatty:
        wait_for(lambda: apscheduler_lines(server), message="APScheduler's debug lines")
    else:
        assert " DEBUG " in server.log()  # -v logs at DEBUG...
        assert apscheduler_lines(server) == []  # ...but not APScheduler's chatter


def test_a_refused_reload_starts_no_worker_and_logs_no_death(
    start_server: StartServer, methods_dir: Path
) -> None:
    server = start_server()
    workers = [(w["pid"], w["generation"]) for w in server.status()["workers"]]
    (methods_dir / "broken.py").write_text("import no_such_module_anywhere\n")
    assert server.http.get("/sys/reset").status_code == 500
    # the generation's template failed to import: no worker of generation 2 was forked
    assert [(w["pid"], w["generation"]) for w in server.status()["workers"]] == workers
    assert "died" not in server.log() and "stopped by the pool" not in server.log()
    assert server.call("echo", ["still"])["result"] == "still"
