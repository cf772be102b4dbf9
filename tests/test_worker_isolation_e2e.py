"""Workers kept apart from the server, end to end: process groups, frames that are data only.

A SIGTERM to the server's whole process group drains like a SIGTERM to the server; what a
method forks ends with its worker; bytes a method writes to its worker's pipe never run code
in the server; a binding error quoting a lone surrogate stays -32602.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ServerProcess, StartServer, in_background, wait_for

HOSTILE = Path(__file__).parent / "fixtures" / "hostile.py"


@pytest.fixture
def hostile_methods(methods_dir: Path) -> Path:
    shutil.copy(HOSTILE, methods_dir / "hostile.py")
    return methods_dir


@pytest.fixture
def group_server(tmp_path: Path, hostile_methods: Path) -> Iterator[ServerProcess]:
    """A server in a process group of its own, as systemd or ``docker stop`` see it."""
    server = ServerProcess(hostile_methods, tmp_path / "server.log", own_group=True)
    yield server
    server.stop(signal.SIGKILL)


def running(pid: int) -> bool:
    """Tell whether ``pid`` is a live process (a zombie, ended and not reaped, is not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_sigterm_to_the_process_group_drains_running_calls(group_server: ServerProcess) -> None:
    server = group_server
    calls = [in_background(server.call, "hostile.sleep_then_pid", [1.5], n) for n in range(3)]
    wait_for(lambda: server.status()["calls_running"] == 3, message="three running calls")
    workers = [worker["pid"] for worker in server.status()["workers"]]
    os.killpg(server.process.pid, signal.SIGTERM)
    answers = [call.result(timeout=30) for call in calls]
    assert all(answer["result"] in workers for answer in answers), answers
    assert server.process.wait(30) == 0
    wait_for(lambda: not any(running(pid) for pid in workers), message="the workers to end")


def test_a_forked_child_dies_with_its_killed_worker(group_server: ServerProcess) -> None:
    server = group_server
    child = server.call("hostile.fork_sleeper")["result"]
    assert running(child)
    worker = next(w["pid"] for w in server.status()["workers"] if w["calls_served"])
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: not running(child), message="the forked child to end")


def test_a_forked_child_dies_when_the_server_stops(group_server: ServerProcess) -> None:
    server = group_server
    child = server.call("hostile.fork_sleeper")["result"]
    assert running(child)
    assert server.stop(signal.SIGTERM) == 0
    wait_for(lambda: not running(child), message="the forked child to end")


def test_a_pickle_written_to_the_pipe_runs_no_code_in_the_server(
    group_server: ServerProcess, tmp_path: Path
) -> None:
    server = group_server
    marker = tmp_path / "unpickled"
    workers = {worker["pid"] for worker in server.status()["workers"]}
    answer = server.call("hostile.forge_pickle_frame", [str(marker)])
    assert "result" in answer or answer["error"]["code"] == -32002, answer
    wait_for(lambda: "killing it as broken" in server.log(), message="the broken worker logged")
    assert not marker.exists()
    wait_for(
        lambda: len(workers - {worker["pid"] for worker in server.status()["workers"]}) == 1,
        message="the broken worker replaced",
    )
    answer = server.call("add", [2, 3])
    assert answer.get("result") == 5, (answer, server.log())


def test_a_binding_error_quoting_a_lone_surrogate_is_invalid_params(
    group_server: ServerProcess,
) -> None:
    body = (
        '{"jsonrpc": "2.0", "method": "hostile.sleep_then_pid", "params": {"\\udc80": 1}, "id": 1}'
    )
    answer = group_server.post(body).json()
    assert answer["error"]["code"] == -32602, answer
    assert "\\udc80" in answer["error"]["data"]["errors"][0]["message"]


def current_pids(server: ServerProcess) -> set[int]:
    """The pids of every worker the server still holds (any generation, any state)."""
    return {worker["pid"] for worker in server.status()["workers"]}


def test_a_call_outliving_the_drain_deadline_is_answered_and_its_worker_stopped(
    start_server: StartServer, hostile_methods: Path
) -> None:
    server = start_server(env={"SBUSR_DRAIN_TIMEOUT_S": "1", "SBUSR_POOL_PROCESSES": "1"})
    pending = in_background(server.call, "hostile.sleep_then_pid", [60])
    wait_for(lambda: server.status()["calls_running"] == 1, message="a running call")
    (old,) = current_pids(server)
    assert server.http.get("/sys/reset").status_code == 200
    answer = pending.result(timeout=15)
    assert answer["error"]["code"] == -32001, answer
    assert answer["error"]["data"]["reason"] == "drain"
    wait_for(lambda: not running(old), message="the old worker to end")
    wait_for(lambda: old not in current_pids(server), message="the old worker gone from status")


def test_threads_left_behind_keep_no_worker_alive_after_resets(
    start_server: StartServer, hostile_methods: Path
) -> None:
    server = start_server(env={"SBUSR_DRAIN_TIMEOUT_S": "1"})
    seen: set[int] = set()
    for _ in range(3):
        seen |= {server.call("hostile.leave_thread", None, n)["result"] for n in range(4)}
        seen |= current_pids(server)
        assert server.http.get("/sys/reset").status_code == 200
    latest = {w["pid"] for w in server.status()["workers"] if w["generation"] == 4}
    stale = seen - latest
    wait_for(lambda: not any(running(pid) for pid in stale), message="no stale workers")
    wait_for(lambda: current_pids(server) == latest, message="only the last generation")


def test_a_worker_grown_past_its_memory_limit_is_replaced_after_its_calls(
    start_server: StartServer, hostile_methods: Path
) -> None:
    server = start_server(env={"SBUSR_WORKER_MAX_MEMORY_MB": "100", "SBUSR_POOL_PROCESSES": "1"})
    beside = in_background(server.call, "hostile.sleep_then_pid", [1.0], "beside")
    wait_for(lambda: server.status()["calls_running"] == 1, message="a running call")
    grown = server.call("hostile.hold_megabytes", [150])["result"]
    assert beside.result(timeout=15)["result"] == grown
    wait_for(lambda: current_pids(server) - {grown}, message="a replacement worker")
    wait_for(lambda: not running(grown), message="the grown worker to end")
    assert server.status()["restarts"] == {"memory": 1}
    assert server.call("hostile.sleep_then_pid", [0])["result"] not in (grown, None)


def test_one_allocation_past_the_hard_cap_fails_in_the_method(
    start_server: StartServer, hostile_methods: Path
) -> None:
    server = start_server(
        env={
            "SBUSR_WORKER_MAX_MEMORY_MB": "100",
            "SBUSR_WORKER_CONCURRENCY": "4",
            "SBUSR_POOL_PROCESSES": "1",
        }
    )
    answer = server.call("hostile.allocate_megabytes", [4096])
    assert answer["error"]["code"] == -32000, answer
    assert answer["error"]["data"]["type"] == "MemoryError"
    assert server.call("add", [2, 3])["result"] == 5


def test_memory_the_hard_cap_cannot_see_gets_its_worker_killed(
    start_server: StartServer, hostile_methods: Path
) -> None:
    """A shared mapping escapes RLIMIT_DATA; the memory check kills the worker past the cap
    (here 2 x 64 + 4 x 8 = 160 MiB) instead of letting the call run on."""
    server = start_server(
        env={
            "SBUSR_WORKER_MAX_MEMORY_MB": "64",
            "SBUSR_WORKER_CONCURRENCY": "4",
            "SBUSR_POOL_PROCESSES": "1",
        }
    )
    answer = server.call("hostile.map_shared_megabytes", [300, 20])
    assert answer["error"]["code"] == -32002, answer
    assert "past its hard cap" in server.log()
    assert server.status()["restarts"] == {"memory": 1}
    assert server.call("add", [2, 3])["result"] == 5


def test_a_frame_larger_than_the_worker_could_hold_is_never_buffered(
    start_server: StartServer, hostile_methods: Path
) -> None:
    """A worker that announces a 1 GiB frame is killed as broken at once, instead of the
    server buffering what it sends until the call's time limit."""
    server = start_server(
        env={
            "SBUSR_WORKER_MAX_MEMORY_MB": "64",
            "SBUSR_WORKER_CONCURRENCY": "4",
            "SBUSR_POOL_PROCESSES": "1",
            "SBUSR_RPC_TIMEOUT": "20",
        }
    )
    answer = server.call("hostile.announce_huge_frame", [100])
    assert answer["error"]["code"] == -32002, answer
    assert "sent a frame of 1073741824 bytes, over its memory cap" in server.log()
    assert server.call("add", [2, 3])["result"] == 5
