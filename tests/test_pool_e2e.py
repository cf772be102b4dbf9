"""The process pool end to end: crashes, time-outs, a full queue, recycling, through HTTP."""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import ServerProcess, StartServer, in_background, wait_for

PROBE = Path(__file__).parent / "fixtures" / "probe.py"


@pytest.fixture
def probe_methods(methods_dir: Path) -> Path:
    shutil.copy(PROBE, methods_dir / "probe.py")
    return methods_dir


def ready_workers(server: ServerProcess, generation: int | None = None) -> list[dict[str, Any]]:
    workers = [w for w in server.status()["workers"] if w["state"] == "ready"]
    return [w for w in workers if generation is None or w["generation"] == generation]


@pytest.mark.parametrize(
    "method, params, facts",
    [
        ("probe.exit_now", [3], {"exitcode": 3}),
        ("probe.segfault", None, {"signal": "SIGSEGV"}),
    ],
)
def test_worker_that_dies_answers_only_its_call(
    start_server: StartServer, probe_methods: Path, method: str, params: Any, facts: dict[str, Any]
) -> None:
    server = start_server()
    slow = in_background(server.call, "probe.sleep_then_pid", [1.0], "slow")
    wait_for(lambda: any(w["busy"] for w in server.status()["workers"]), message="a busy worker")
    response = server.call(method, params, "dying")
    assert response["error"]["code"] == -32002
    assert {key: response["error"]["data"][key] for key in facts} == facts
    assert slow.result(timeout=10)["result"] > 0
    wait_for(lambda: len(ready_workers(server)) == 2, message="the pool to heal")
    assert server.status()["restarts"] == {"crash": 1}
    assert server.call("add", [2, 3]) == {"jsonrpc": "2.0", "result": 5, "id": 1}


def test_worker_killed_from_outside_mid_call(
    start_server: StartServer, probe_methods: Path
) -> None:
    server = start_server()
    pending = in_background(server.call, "probe.sleep_then_pid", [30], 7)
    busy = wait_for(
        lambda: [w for w in server.status()["workers"] if w["busy"]], message="a busy worker"
    )
    os.kill(busy[0]["pid"], signal.SIGKILL)
    response = pending.result(timeout=10)
    assert response["id"] == 7
    assert response["error"]["code"] == -32002
    assert response["error"]["data"]["signal"] == "SIGKILL"
    assert response["error"]["data"]["pid"] == busy[0]["pid"]
    wait_for(lambda: len(ready_workers(server)) == 2, message="the pool to heal")


def test_call_past_its_time_limit_is_killed_and_replaced(
    start_server: StartServer, probe_methods: Path
) -> None:
    server = start_server(env={"SBUSR_RPC_TIMEOUT": "1", "SBUSR_POOL_PROCESSES": "1"})
    before = server.call("probe.pid")["result"]
    response = server.call("probe.sleep_then_pid", [10])
    assert response["error"]["code"] == -32001
    assert response["error"]["data"]["pid"] == before
    wait_for(lambda: len(ready_workers(server)) == 1, message="the replacement worker")
    after = server.call("probe.pid")["result"]
    assert after != before
    assert server.status()["restarts"] == {"timeout": 1}


def test_flood_over_a_full_queue_gets_one_answer_each(
    start_server: StartServer, probe_methods: Path
) -> None:
    server = start_server(
        env={
            "SBUSR_POOL_PROCESSES": "1",
            "SBUSR_QUEUE_MAXSIZE": "4",
            "SBUSR_WORKER_CONCURRENCY": "1",
        }
    )
    count = 40

    def call(number: int) -> httpx.Response:
        return httpx.post(
            server.url + "/rpc",
            timeout=30,
            json={"jsonrpc": "2.0", "method": "sleep", "params": [0.05], "id": number},
        )

    with concurrent.futures.ThreadPoolExecutor(count) as executor:
        responses = list(executor.map(call, range(count)))
    answered = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 503]
    assert len(answered) + len(refused) == count
    assert refused and answered
    assert all(r.json()["result"] == 0.05 for r in answered)
    for response in refused:
        assert response.headers["Retry-After"] == "1"
        assert response.json()["error"]["code"] == -32003
    assert sorted(r.json()["id"] for r in responses) == list(range(count))
    assert server.status()["in_flight"] == 0


def test_workers_are_recycled_after_max_tasks(
    start_server: StartServer, probe_methods: Path
) -> None:
    server = start_server(env={"SBUSR_POOL_PROCESSES": "1", "SBUSR_POOL_MAXTASKSPERCHILD": "3"})
    pids: list[int] = []

    def two_workers_took_turns() -> bool:
        pids.append(server.call("probe.pid", request_id=len(pids))["result"])
        return len(set(pids)) >= 3

    wait_for(two_workers_took_turns, message="two recyclings")
    # a worker keeps serving until its replacement is ready: at least 3 calls each, in turn
    runs = [len(list(group)) for _, group in itertools.groupby(pids)]
    assert all(run >= 3 for run in runs[:-1]), pids
    assert len(set(pids)) == len(runs)
    assert server.status()["restarts"]["recycle"] >= 2


def test_recycling_never_interrupts_a_batch(start_server: StartServer, probe_methods: Path) -> None:
    server = start_server(env={"SBUSR_POOL_PROCESSES": "1", "SBUSR_POOL_MAXTASKSPERCHILD": "2"})
    pids: set[int] = set()

    def batch_answered_by_a_new_worker() -> bool:
        batch = [{"jsonrpc": "2.0", "method": "probe.pid", "id": n} for n in range(7)]
        body = server.post(batch).json()
        assert sorted(item["id"] for item in body) == list(range(7))
        assert all(isinstance(item.get("result"), int) for item in body), body
        pids.update(item["result"] for item in body)
        return len(pids) >= 3

    wait_for(batch_answered_by_a_new_worker, message="batches across two recyclings")


def test_unencodable_result_is_an_internal_error(
    start_server: StartServer, probe_methods: Path
) -> None:
    response = start_server().call("probe.unencodable")
    assert response["error"]["code"] == -32603
    assert response["error"]["data"]["type"] == "TypeError"
    assert "object" in response["error"]["data"]["message"]


def test_worker_logs_reach_the_server_at_their_levels(
    start_server: StartServer, probe_methods: Path
) -> None:
    server = start_server()
    assert server.call("probe.log_levels", ["marker-71"])["result"] is None
    wait_for(lambda: "error: marker-71" in server.log(), message="the worker's error line")
    log = server.log()
    assert "INFO methods.probe" in log and "info: marker-71" in log
    assert "ERROR methods.probe" in log
    assert "debug: marker-71" not in log


def test_verbose_server_shows_worker_debug_lines(
    start_server: StartServer, probe_methods: Path
) -> None:
    server = start_server(args=["-v"])
    server.call("probe.log_levels", ["marker-72"])
    wait_for(lambda: "debug: marker-72" in server.log(), message="the worker's debug line")


def test_calls_queued_behind_a_dying_call_run_elsewhere(
    start_server: StartServer, probe_methods: Path
) -> None:
    # one call at a time: the calls behind the fatal one wait in the pool's queue
    server = start_server(env={"SBUSR_POOL_PROCESSES": "1", "SBUSR_WORKER_CONCURRENCY": "1"})
    batch = [
        {"jsonrpc": "2.0", "method": "probe.pid", "id": 1},
        {"jsonrpc": "2.0", "method": "probe.exit_now", "params": [9], "id": 2},
        {"jsonrpc": "2.0", "method": "probe.pid", "id": 3},
        {"jsonrpc": "2.0", "method": "probe.pid", "id": 4},
    ]
    body = {item["id"]: item for item in server.post(batch).json()}
    assert body[2]["error"]["code"] == -32002 and body[2]["error"]["data"]["exitcode"] == 9
    assert body[3]["result"] == body[4]["result"] != body[1]["result"]


def test_large_params_and_results_cross_the_pipes(
    start_server: StartServer, probe_methods: Path
) -> None:
    server = start_server(env={"SBUSR_MAX_BODY_BYTES": str(4 << 20)})
    text = "é" * 300_000  # 1.8 MB as escaped JSON
    assert server.call("echo", [text])["result"] == text
    batch = [
        {"jsonrpc": "2.0", "method": "echo", "params": ["x" * 100_000], "id": n} for n in range(20)
    ]
    assert [item["result"] for item in server.post(batch).json()] == ["x" * 100_000] * 20


def test_print_in_a_method_goes_to_the_log_not_the_pipe(
    start_server: StartServer, probe_methods: Path
) -> None:
    server = start_server()
    assert server.call("probe.shout", ["loud"])["result"] == "loud"
    wait_for(lambda: "SHOUT loud" in server.log(), message="the printed line")


def test_a_call_that_cannot_be_framed_spares_its_neighbours(start_server: StartServer) -> None:
    """Params the JSON parser takes but pickle cannot (900 levels deep): that call gets -32602,
    the calls sent in the same frame get their results, and the server keeps serving."""
    server = start_server(env={"SBUSR_POOL_PROCESSES": "1"})
    deep = "[" * 900 + "]" * 900
    batch = ",".join(
        [f'{{"jsonrpc":"2.0","method":"echo","params":["ok {n}"],"id":{n}}}' for n in range(3)]
        + [f'{{"jsonrpc":"2.0","method":"echo","params":[{deep}],"id":"deep"}}']
    )
    response = server.http.post(
        "/rpc", content=f"[{batch}]", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    answers = {item["id"]: item for item in response.json()}
    assert [answers[n]["result"] for n in range(3)] == ["ok 0", "ok 1", "ok 2"]
    assert answers["deep"]["error"]["code"] == -32602
    assert server.call("add", [1, 2])["result"] == 3
