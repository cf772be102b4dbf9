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


COUNTED_MODULE = """
import os
import pathlib

with pathlib.Path(__file__).with_name("imports.log").open("a") as log:
    log.write(f"{os.getpid()}\\n")


def pid():
    return os.getpid()
"""


def test_a_generation_imports_its_code_once_and_recycled_workers_keep_it(
    start_server: StartServer, methods_dir: Path
) -> None:
    (methods_dir / "counted.py").write_text(COUNTED_MODULE)
    imports = methods_dir / "imports.log"
    server = start_server(env={"SBUSR_POOL_PROCESSES": "2", "SBUSR_POOL_MAXTASKSPERCHILD": "2"})
    pids = {server.call("counted.pid")["result"] for _ in range(12)}
    assert len(pids) > 2  # workers were recycled
    importers = imports.read_text().split()
    assert len(importers) == 1 and int(importers[0]) not in pids  # once, by the template

    init = methods_dir / "__init__.py"
    good = init.read_text()
    init.write_text(good + "\ndef oops(:\n")
    # recycled workers run their generation's code, whatever is on disk now
    more = {server.call("counted.pid")["result"] for _ in range(12)}
    assert len(more - pids) > 1
    assert server.call("echo", ["b"])["result"] == "b"
    assert server.http.get("/sys/reset").status_code == 500  # the broken code is refused

    init.write_text(good + "\n\ndef shout(text):\n    return text.upper()\n")
    assert server.call("shout", ["c"])["error"]["code"] == -32601  # not before a reload
    assert server.http.get("/sys/reset").status_code == 200
    assert server.call("shout", ["d"])["result"] == "D"
    assert len(imports.read_text().split()) == 2  # imported once more, for generation 2
