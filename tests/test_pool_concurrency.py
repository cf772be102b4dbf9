"""Many calls at once in a worker, end to end through HTTP: overlap, ceilings, limits, crashes,
recycling and reload under load, request ids in the workers' log lines."""

from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import ServerProcess, StartServer, in_background, wait_for

CONCURRENCY = Path(__file__).parent / "fixtures" / "concurrency.py"


@pytest.fixture
def conc_methods(methods_dir: Path) -> Path:
    shutil.copy(CONCURRENCY, methods_dir / "conc.py")
    return methods_dir


def request(method: str, params: Any, request_id: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": request_id}


def answers(server: ServerProcess, batch: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """POST ``batch``; return its responses by id (each id exactly once)."""
    body = server.post(batch).json()
    assert sorted(map(str, (item["id"] for item in body))) == sorted(
        map(str, (item["id"] for item in batch))
    ), body
    return {item["id"]: item for item in body}


def workers(server: ServerProcess, state: str = "ready") -> list[dict[str, Any]]:
    return [w for w in server.status()["workers"] if w["state"] == state]


def test_async_and_blocking_calls_overlap_in_one_worker(
    start_server: StartServer, conc_methods: Path
) -> None:
    server = start_server(env={"SBUSR_POOL_PROCESSES": "1"})
    batch = [request("conc.meet_async", ["mixed", 6], n) for n in range(3)]
    batch += [request("conc.meet_blocking", ["mixed", 6], n) for n in range(3, 6)]
    assert all(item["result"] is True for item in answers(server, batch).values())


def test_the_concurrency_ceiling_holds(start_server: StartServer, conc_methods: Path) -> None:
    server = start_server(env={"SBUSR_POOL_PROCESSES": "1", "SBUSR_WORKER_CONCURRENCY": "3"})
    batch = [request("conc.wait_async", ["ceiling", 0.1], n) for n in range(6)]
    batch += [request("conc.wait_blocking", ["ceiling", 0.1], n) for n in range(6, 12)]
    assert all("result" in item for item in answers(server, batch).values())
    assert server.call("conc.most_at_once", ["ceiling"])["result"] == 3
    worker = workers(server)[0]
    assert worker["capacity"] == 3 and worker["running"] == 0


def test_concurrency_1_runs_one_call_at_a_time(
    start_server: StartServer, conc_methods: Path
) -> None:
    server = start_server(env={"SBUSR_POOL_PROCESSES": "1", "SBUSR_WORKER_CONCURRENCY": "1"})
    batch = [request("conc.meet_async", ["one", 2, 0.2], n) for n in range(2)]
    batch += [request("conc.meet_blocking", ["one", 2, 0.2], n) for n in range(2, 4)]
    assert all(item["result"] is False for item in answers(server, batch).values())
    assert server.call("conc.most_at_once", ["one"])["result"] == 1


def test_one_at_a_time_methods_never_overlap_while_others_do(
    start_server: StartServer, conc_methods: Path
) -> None:
    server = start_server(env={"SBUSR_POOL_PROCESSES": "1"})
    batch = [request("conc.serial_blocking", ["serial-blocking", 0.05], n) for n in range(4)]
    batch += [request("conc.serial_async", ["serial-async", 0.05], n) for n in range(4, 8)]
    batch += [request("conc.meet_blocking", ["beside", 2], n) for n in range(8, 10)]
    replies = answers(server, batch)
    assert all("result" in item for item in replies.values()), replies
    assert replies[8]["result"] is True and replies[9]["result"] is True
    assert server.call("conc.most_at_once", ["serial-blocking"])["result"] == 1
    assert server.call("conc.most_at_once", ["serial-async"])["result"] == 1


def test_async_time_out_cancels_the_call_and_keeps_the_worker(
    start_server: StartServer, conc_methods: Path, tmp_path: Path
) -> None:
    server = start_server(env={"SBUSR_POOL_PROCESSES": "1", "SBUSR_RPC_TIMEOUT": "1"})
    before = server.call("conc.pid")["result"]
    marker = tmp_path / "cancelled"
    batch = [request("conc.async_forever", [str(marker)], "forever")]
    batch += [request("conc.wait_async", ["neighbour", 0.2], n) for n in range(3)]
    batch += [request("conc.wait_blocking", ["neighbour", 0.2], 3)]
    replies = answers(server, batch)
    assert replies["forever"]["error"]["code"] == -32001
    assert replies["forever"]["error"]["data"]["pid"] == before
    assert [replies[n]["result"] for n in range(4)] == [before] * 4
    wait_for(
        lambda: marker.exists() and marker.read_text() == "cancelled",
        message="the method's finally block",
    )
    wait_for(lambda: workers(server)[0]["cancelling"] == 0, message="the cancellation confirmed")
    assert [w["pid"] for w in server.status()["workers"]] == [before]
    assert server.call("conc.pid")["result"] == before
    assert "timeout" not in server.status()["restarts"]


def test_blocking_time_out_spares_its_neighbours_then_replaces_the_worker(
    start_server: StartServer, conc_methods: Path, tmp_path: Path
) -> None:
    server = start_server(env={"SBUSR_POOL_PROCESSES": "1", "SBUSR_RPC_TIMEOUT": "2"})
    before = server.call("conc.pid")["result"]
    stuck_sent = time.monotonic()
    stuck = in_background(server.call, "conc.blocking_until", [str(tmp_path / "never")], "stuck")
    wait_for(lambda: workers(server)[0]["running"] == 1, message="the stuck call running")
    # a neighbour sent a second later: its own limit ends after the stuck call's
    wait_for(lambda: time.monotonic() - stuck_sent > 1.0, message="a second to pass")
    release = tmp_path / "release"
    neighbour = in_background(server.call, "conc.blocking_until", [str(release)], "neighbour")
    wait_for(lambda: workers(server)[0]["running"] == 2, message="the neighbour running")
    timed_out = stuck.result(timeout=10)
    assert timed_out["error"]["code"] == -32001 and timed_out["error"]["data"]["pid"] == before
    # the stuck worker takes no new calls: they go to its replacement
    draining = wait_for(lambda: workers(server, "draining"), message="the worker draining")
    assert [w["pid"] for w in draining] == [before]
    after = server.call("conc.pid")["result"]
    assert after != before
    release.write_text("go")
    assert neighbour.result(timeout=10)["result"] == before
    wait_for(
        lambda: [w["pid"] for w in server.status()["workers"]] == [after],
        message="the stuck worker killed",
    )
    assert server.status()["restarts"] == {"timeout": 1}


def test_async_call_that_blocks_the_loop_past_its_limit_replaces_the_worker(
    start_server: StartServer, conc_methods: Path
) -> None:
    server = start_server(env={"SBUSR_POOL_PROCESSES": "1", "SBUSR_RPC_TIMEOUT": "1"})
    before = server.call("conc.pid")["result"]
    response = server.call("conc.hog_the_loop", [4])
    assert response["error"]["code"] == -32001 and response["error"]["data"]["pid"] == before
    wait_for(
        lambda: [w["pid"] for w in workers(server)] not in ([], [before]),
        message="a replacement worker",
    )
    assert server.call("conc.pid")["result"] != before
    assert server.status()["restarts"] == {"timeout": 1}


@pytest.mark.parametrize("how", ["os._exit", "SIGKILL"])
def test_crash_answers_every_running_call_once(
    start_server: StartServer, conc_methods: Path, probe_methods_dir: Path, how: str
) -> None:
    server = start_server(env={"SBUSR_POOL_PROCESSES": "1"}, methods=probe_methods_dir)
    pid = server.call("conc.pid")["result"]
    batch = [request("conc.wait_async", ["crash", 30], n) for n in range(20)]
    batch += [request("conc.wait_blocking", ["crash", 30], n) for n in range(20, 40)]
    pending = in_background(answers, server, batch)
    wait_for(lambda: workers(server)[0]["running"] == 40, message="40 calls running")
    if how == "SIGKILL":
        os.kill(pid, signal.SIGKILL)
    else:
        assert server.call("probe.exit_now", [7], "exit")["error"]["code"] == -32002
    replies = pending.result(timeout=20)
    assert len(replies) == 40
    for item in replies.values():
        assert item["error"]["code"] == -32002, item
        assert item["error"]["data"]["pid"] == pid
        if how == "SIGKILL":
            assert item["error"]["data"]["signal"] == "SIGKILL"
        else:
            assert item["error"]["data"]["exitcode"] == 7
    wait_for(lambda: len(workers(server)) == 1, message="the replacement worker")
    assert server.call("conc.pid")["result"] != pid


def test_calls_a_dead_worker_never_read_run_on_another_worker(
    start_server: StartServer, conc_methods: Path, tmp_path: Path
) -> None:
    server = start_server(env={"SBUSR_POOL_PROCESSES": "1"})
    before = server.call("conc.pid")["result"]
    marker = tmp_path / "hogging"
    crash = in_background(server.call, "conc.hog_then_exit", [str(marker), 1.0, 7])
    wait_for(marker.exists, message="the worker's loop blocked")
    replies = answers(server, [request("conc.pid", [], n) for n in range(5)])
    assert crash.result(timeout=10)["error"]["code"] == -32002
    for item in replies.values():  # sent to the blocked worker, never read by it: run elsewhere
        assert "result" in item, item
        assert item["result"] != before
    assert server.status()["restarts"] == {"crash": 1}


@pytest.fixture
def probe_methods_dir(conc_methods: Path) -> Path:
    shutil.copy(Path(__file__).parent / "fixtures" / "probe.py", conc_methods / "probe.py")
    return conc_methods


def test_recycling_under_load_loses_nothing(start_server: StartServer, conc_methods: Path) -> None:
    server = start_server(env={"SBUSR_POOL_PROCESSES": "2", "SBUSR_POOL_MAXTASKSPERCHILD": "30"})
    first = {w["pid"] for w in workers(server)}
    outcomes: list[Any] = []
    pids: set[int] = set()

    def caller(number: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for sent in range(40):
                method = "conc.wait_async" if sent % 2 else "conc.wait_blocking"
                body = client.post("/rpc", json=request(method, ["load", 0.005], sent)).json()
                outcomes.append(
                    body.get("id") == sent and isinstance(body.get("result"), int) or body
                )
                if isinstance(body.get("result"), int):
                    pids.add(body["result"])

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [outcome for outcome in outcomes if outcome is not True] == []
    assert len(outcomes) == 800
    assert pids - first, "no call was answered by a replacement"
    status = server.status()
    assert status["restarts"]["recycle"] >= 1 and status["in_flight"] == 0
    assert status["worker_starts"]["count"] >= 3 and status["worker_starts"]["seconds"] > 0


def test_reload_with_hundreds_of_calls_in_flight_loses_none(
    start_server: StartServer, conc_methods: Path
) -> None:
    server = start_server(env={"SBUSR_POOL_PROCESSES": "2"})
    batches = [
        [request("conc.wait_async", ["reload", 1.0], n) for n in range(100)],
        [request("conc.wait_blocking", ["reload", 1.0], n) for n in range(100)],
        [request("conc.wait_async", ["reload", 1.0], n) for n in range(100)],
    ]
    with concurrent.futures.ThreadPoolExecutor(3) as executor:
        pending = [executor.submit(answers, server, batch) for batch in batches]
        wait_for(lambda: server.status()["calls_running"] == 300, message="300 calls running")
        old = {w["pid"] for w in workers(server)}
        reset = httpx.get(server.url + "/sys/reset", timeout=30)
        assert reset.status_code == 200 and reset.json()["generation"] == 2
        new = server.call("conc.pid")["result"]
        replies = [future.result(timeout=30) for future in pending]
    assert new not in old
    for reply in replies:
        assert len(reply) == 100
        assert {item["result"] for item in reply.values()} <= old, reply
    wait_for(
        lambda: {w["generation"] for w in server.status()["workers"]} == {2},
        message="the old generation to exit",
    )


def test_request_ids_stay_with_their_calls_in_worker_log_lines(
    start_server: StartServer, conc_methods: Path
) -> None:
    server = start_server(env={"SBUSR_POOL_PROCESSES": "1"})

    def call(number: int) -> None:
        method = "conc.log_async" if number % 2 else "conc.log_blocking"
        response = httpx.post(
            server.url + "/rpc",
            timeout=30,
            json=request(method, [f"tag-{number}", 0.2], number),
            headers={"X-Request-ID": f"rid-{number}"},
        )
        assert response.json()["result"] == f"tag-{number}"

    with concurrent.futures.ThreadPoolExecutor(20) as executor:
        list(executor.map(call, range(20)))
    pattern = re.compile(r"(async|blocking)-(before|after) tag-(\d+) request_id=rid-(\d+)$")

    def lines() -> list[re.Match[str]]:
        found = [pattern.search(line) for line in server.log().splitlines()]
        return [match for match in found if match]

    matches = wait_for(lambda: len(lines()) == 40 and lines(), message="40 worker log lines")
    assert all(match.group(3) == match.group(4) for match in matches), [m.group(0) for m in matches]


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listed:
        return [int(child) for child in listed.read().split()]


def test_workers_are_still_started_and_watched_when_the_template_dies(
    start_server: StartServer, conc_methods: Path
) -> None:
    server = start_server(env={"SBUSR_POOL_PROCESSES": "1"})
    worker = server.call("conc.pid")["result"]
    (template,) = children(server.process.pid)
    (generation_template,) = children(template)  # forked from the template, imported the code
    assert children(generation_template) == [worker]  # workers are forked from it
    os.kill(generation_template, signal.SIGKILL)
    os.kill(template, signal.SIGKILL)
    pending = in_background(server.call, "conc.wait_async", ["orphan", 30], "orphan")
    wait_for(lambda: workers(server)[0]["running"] == 1, message="the call running")
    os.kill(worker, signal.SIGKILL)
    died = pending.result(timeout=10)
    assert died["error"]["code"] == -32002 and died["error"]["data"]["pid"] == worker
    replacement = wait_for(lambda: [w["pid"] for w in workers(server)], message="a replacement")
    assert replacement != [worker]
    assert server.call("conc.pid")["result"] == replacement[0]
