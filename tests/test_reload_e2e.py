"""Hot reload end to end: new code served, running calls finish, broken code refused."""

from __future__ import annotations

import concurrent.futures
import threading
from pathlib import Path

import httpx

from tests.support import StartServer, wait_for

VERSION_MODULE = """
import time


def get():
    return "{version}"


def slow(seconds):
    time.sleep(seconds)
    return "{version}"
"""


def write_version(methods_dir: Path, version: str) -> None:
    (methods_dir / "version.py").write_text(VERSION_MODULE.format(version=version))


def test_reload_serves_new_code_and_lets_running_calls_finish(
    start_server: StartServer, methods_dir: Path
) -> None:
    write_version(methods_dir, "v1")
    server = start_server()
    assert server.call("version.get")["result"] == "v1"
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        running = executor.submit(server.call, "version.slow", [1.0])
        wait_for(
            lambda: any(w["busy"] for w in server.status()["workers"]), message="a busy worker"
        )
        write_version(methods_dir, "v2")
        reset = server.http.get("/sys/reset")
        assert reset.status_code == 200
        assert reset.json()["generation"] == 2 and reset.json()["elapsed_ms"] > 0
        assert server.call("version.get")["result"] == "v2"
        assert running.result(timeout=10)["result"] == "v1"
    wait_for(
        lambda: {w["generation"] for w in server.status()["workers"]} == {2},
        message="the old generation to exit",
    )


def test_reload_under_load_loses_and_fails_no_call(start_server: StartServer) -> None:
    server = start_server()
    stop = threading.Event()
    outcomes: list[object] = []

    def caller(number: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            sent = 0
            while not stop.is_set() and sent < 2000:
                sent += 1
                response = client.post(
                    "/rpc",
                    json={"jsonrpc": "2.0", "method": "add", "params": [number, sent], "id": sent},
                )
                body = response.json()
                outcomes.append(body.get("result") == number + sent or body)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(outcomes) > 50, message="calls to flow")
        for expected in (2, 3, 4):
            assert server.http.post("/sys/reset").json()["generation"] == expected
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    failures = [outcome for outcome in outcomes if outcome is not True]
    assert failures == []
    assert len(outcomes) > 100


def test_reload_with_broken_code_keeps_the_old_generation(
    start_server: StartServer, methods_dir: Path
) -> None:
    write_version(methods_dir, "v1")
    server = start_server()
    (methods_dir / "broken.py").write_text("def oops(:\n    pass\n")
    reset = server.http.get("/sys/reset")
    assert reset.status_code == 500
    assert reset.headers["Content-Type"] == "application/json"
    error = reset.json()["error"]
    assert error["code"] == 500
    assert error["details"][0]["module"] == "methods.broken"
    assert error["details"][0]["type"] == "SyntaxError"
    assert server.call("version.get")["result"] == "v1"
    assert server.status()["generation"] == 1
    (methods_dir / "broken.py").write_text("import no_such_module_anywhere\n")
    reset = server.http.get("/sys/reset")
    assert reset.status_code == 500
    assert reset.json()["error"]["details"][0]["type"] == "ModuleNotFoundError"
    (methods_dir / "broken.py").unlink()
    assert server.http.get("/sys/reset").json()["generation"] == 2


def test_concurrent_resets_are_serialised(start_server: StartServer) -> None:
    server = start_server()
    with concurrent.futures.ThreadPoolExecutor(3) as executor:
        replies = list(
            executor.map(
                lambda _: httpx.get(server.url + "/sys/reset", timeout=60).json(), range(3)
            )
        )
    assert sorted(reply["generation"] for reply in replies) == [2, 3, 4]
    wait_for(
        lambda: {w["generation"] for w in server.status()["workers"]} == {4},
        message="only the last generation to remain",
    )


def test_replacement_worker_never_serves_other_code_when_the_package_breaks(
    start_server: StartServer, methods_dir: Path
) -> None:
    server = start_server(
        env={
            "SBUSR_POOL_PROCESSES": "1",
            "SBUSR_POOL_MAXTASKSPERCHILD": "2",
            "SBUSR_RPC_TIMEOUT": "2",
        }
    )
    init = methods_dir / "__init__.py"
    good = init.read_text()
    assert server.call("echo", ["a"])["result"] == "a"
    init.write_text(good + "\ndef oops(:\n")
    assert server.call("echo", ["b"])["result"] == "b"  # the worker's last call before recycling
    wait_for(
        lambda: "the methods package on disk does not import" in server.log(),
        message="the replacement refused",
    )
    # the old worker keeps serving (its own code) while no replacement can take over
    assert server.call("echo", ["c"])["result"] == "c"
    init.write_text(good + "\n\ndef shout(text):\n    return text.upper()\n")
    answer = wait_for(
        lambda: server.call("shout", ["d"]).get("result"),
        timeout_s=20,
        message="a replacement worker on the fixed code",
    )
    assert answer == "D"
    wait_for(
        lambda: "changed since generation 1 was loaded" in server.log(),
        message="the warning that the code changed on disk",
    )
