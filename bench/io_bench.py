#!/usr/bin/env python3
"""I/O-bound benchmark: methods that wait 100 ms, sbusr against FastAPI on uvicorn, on one core.

    python bench/io_bench.py [--seconds 10] [--rounds 3] [--extra] [--before DIR]

In one run it starts, each with all its processes pinned with taskset to CPU 0:
  * ``sbusr``: ``run.py`` at its default settings (workers, worker_concurrency, recycling,
    access log) on a methods folder with ``io.wait_async`` (``await asyncio.sleep(0.1)``) and
    ``io.wait_blocking`` (``time.sleep(0.1)`` in a plain function);
  * ``fastapi``: bench/fastapi_app.py on uvicorn, one process, uvloop + httptools, no access log
    (the stack most users would pick instead): ``async def`` and plain ``def`` endpoints with
    the same waits (FastAPI runs the plain one in its thread pool);
and drives each with ``wrk -t1 --latency`` pinned to CPU 1, POSTing a JSON-RPC request, in
interleaved rounds (every case, both servers, then the next round) so that drift of the machine
hits all alike. Cases: async wait at 100 and 1,000 connections, blocking wait at 100
connections. It prints requests/s, p50 and p99 latency (medians of the rounds) and the ratio
sbusr / fastapi of the rates; requests answered with an HTTP error are counted and shown. With
``--extra``, also ``sbusr-no-access-log`` (SBUSR_ACCESS_LOG=0, as uvicorn runs here); with
``--before DIR``, also ``sbusr-before``: the same settings on the sbusr tree in DIR (e.g. ``git
worktree add /tmp/before <commit>``), for a before/after in one run.

Needs wrk and taskset, and ``pip install -r bench/requirements.txt`` (fastapi, uvicorn). A
measurement, not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.http_bench import (  # noqa: E402
    LOAD_CPU,
    PROJECT_DIR,
    ensure_wrk,
    free_port,
    start,
    stop_all,
    wrk_script,
)

METHODS = '''"""Methods of bench/io_bench.py: each waits 100 ms."""

import asyncio
import time


async def wait_async():
    await asyncio.sleep(0.1)
    return "ok"


def wait_blocking():
    time.sleep(0.1)
    return "ok"
'''

#: (case name, sbusr method, fastapi path, connections)
CASES = [
    ("async 100 ms, 100 conn", "io.wait_async", "/async", 100),
    ("async 100 ms, 1000 conn", "io.wait_async", "/async", 1000),
    ("blocking 100 ms, 100 conn", "io.wait_blocking", "/blocking", 100),
]

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS_MS[unit]


def run_wrk(wrk: str, url: str, script: Path, seconds: int, connections: int) -> dict[str, float]:
    """Drive ``url``; return ``{"rate", "p50_ms", "p99_ms", "errors"}`` (errors: requests
    answered with an HTTP error status, plus socket errors)."""
    output = subprocess.run(
        [
            "taskset",
            "-c",
            LOAD_CPU,
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = 0
    found = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if found:
        errors += int(found.group(1))
    found = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if found:
        errors += sum(int(group) for group in found.groups())
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+([\d.]+\w+)", output).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+([\d.]+\w+)", output).group(1))  # type: ignore[union-attr]
    return {"rate": rate, "p50_ms": p50, "p99_ms": p99, "errors": errors}


def raise_open_files_limit() -> None:
    """1,000 connections need more descriptors than the usual 1,024 (inherited by servers)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--extra", action="store_true", help="also sbusr without its access log")
    parser.add_argument("--before", type=Path, help="also the sbusr tree in this folder")
    arguments = parser.parse_args()
    wrk = ensure_wrk()
    raise_open_files_limit()
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(1))  # stop the servers too
    python = sys.executable
    names = ["sbusr", "fastapi"] + (["sbusr-no-access-log"] if arguments.extra else [])
    if arguments.before:
        names.insert(1, "sbusr-before")
    ports = {name: free_port() for name in names}
    with tempfile.TemporaryDirectory() as scratch:
        methods = Path(scratch) / "methods"
        methods.mkdir()
        (methods / "__init__.py").write_text("")
        (methods / "io.py").write_text(METHODS)
        servers = {
            "sbusr": start(
                [python, "run.py", "--port", str(ports["sbusr"])],
                ports["sbusr"],
                {"SBUSR_METHODS_DIR": str(methods)},
            ),
            "fastapi": start(
                [
                    python,
                    "-m",
                    "uvicorn",
                    "bench.fastapi_app:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(ports["fastapi"]),
                    "--loop",
                    "uvloop",
                    "--http",
                    "httptools",
                    "--no-access-log",
                    "--workers",
                    "1",
                ],
                ports["fastapi"],
            ),
        }
        if arguments.extra:
            servers["sbusr-no-access-log"] = start(
                [python, "run.py", "--port", str(ports["sbusr-no-access-log"])],
                ports["sbusr-no-access-log"],
                {"SBUSR_METHODS_DIR": str(methods), "SBUSR_ACCESS_LOG": "0"},
            )
        if arguments.before:
            servers["sbusr-before"] = start(
                [python, "run.py", "--port", str(ports["sbusr-before"])],
                ports["sbusr-before"],
                {"SBUSR_METHODS_DIR": str(methods)},
                cwd=arguments.before.resolve(),
            )
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        try:
            scripts = {}
            for _, method, _, _ in CASES:
                body = json.dumps({"jsonrpc": "2.0", "method": method, "id": 1})
                scripts[method] = wrk_script(Path(scratch), method, body)
            urls = {
                (case, name): f"http://127.0.0.1:{ports[name]}/rpc"
                for case, _, _, _ in CASES
                for name in names
                if name != "fastapi"
            }
            urls.update(
                {
                    (case, "fastapi"): f"http://127.0.0.1:{ports['fastapi']}{path}"
                    for case, _, path, _ in CASES
                }
            )
            for case, method, _, connections in CASES:  # warm up
                for name in servers:
                    run_wrk(wrk, urls[case, name], scripts[method], 2, connections)
            for round_number in range(arguments.rounds):
                for case, method, _, connections in CASES:
                    for name in servers:
                        outcome = run_wrk(
                            wrk, urls[case, name], scripts[method], arguments.seconds, connections
                        )
                        results.setdefault((case, name), []).append(outcome)
                        print(
                            f"round {round_number + 1}  {case:<26} {name:<19}"
                            f" {outcome['rate']:8.0f} req/s  p50 {outcome['p50_ms']:7.1f} ms"
                            f"  p99 {outcome['p99_ms']:7.1f} ms  errors {outcome['errors']:.0f}",
                            flush=True,
                        )
        finally:
            stop_all(servers.values())
    print(
        f"\n{'case':<26} {'server':<19} {'req/s':>10} {'p50 ms':>10} {'p99 ms':>10}"
        f" {'errors':>7} {'ratio':>7}"
    )
    for case, _, _, _ in CASES:
        medians = {}
        for name in names:
            rounds = results[case, name]
            medians[name] = {
                key: statistics.median(r[key] for r in rounds)
                for key in ("rate", "p50_ms", "p99_ms")
            }
            medians[name]["errors"] = sum(r["errors"] for r in rounds)
        for name in names:
            figures = medians[name]
            ratio = (
                f"{figures['rate'] / medians['fastapi']['rate']:.2f}x" if name != "fastapi" else ""
            )
            print(
                f"{case:<26} {name:<19} {figures['rate']:10.0f} {figures['p50_ms']:10.1f}"
                f" {figures['p99_ms']:10.1f} {figures['errors']:7.0f} {ratio:>7}"
            )


if __name__ == "__main__":
    os.chdir(PROJECT_DIR)
    main()
