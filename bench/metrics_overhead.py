#!/usr/bin/env python3
"""Hot-path cost of the call metrics: per call, through the JSON-RPC core, and over HTTP.

Three measurements, metrics on versus off:

1. ``observe``: :meth:`server.metrics.CallMetrics.observe` alone, nanoseconds per call
   (a result, and an error whose code is read from the payload).
2. ``core``: ``--calls`` single ``echo`` requests through :class:`server.jsonrpc.JsonRpcCore`
   and a real pool (``--processes`` workers), ``--concurrency`` at a time; rounds alternate
   on/off (and which goes first) so that drift hits both; calls per second, best round of each.
3. ``http`` (when ``wrk`` is on PATH): the real server (``run.py``, access log off) with
   ``SBUSR_METRICS=1`` and ``=0``, ``wrk`` POSTing ``echo`` for ``--seconds`` s; requests per
   second.

Usage: ``.venv/bin/python bench/metrics_overhead.py [--calls 20000] [--rounds 3]``.
Prints one line per figure. Availability: Linux (the pool).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from executor.pool import Pool  # noqa: E402
from server import metrics  # noqa: E402
from server.jsonrpc import JsonRpcCore  # noqa: E402
from tests.support import ServerProcess  # noqa: E402

logger = logging.getLogger(__name__)

ECHO = b'{"jsonrpc":"2.0","method":"echo","params":["x"],"id":1}'
WRK_SCRIPT = (
    f"wrk.method = \"POST\"\nwrk.body = '{ECHO.decode()}'\n"
    'wrk.headers["Content-Type"] = "application/json"\n'
)


def _order(number: int) -> tuple[str, str]:
    """Which mode runs first in round ``number``: alternates, so that warm-up and drift
    favour neither."""
    return ("off", "on") if number % 2 == 0 else ("on", "off")


def bench_observe(count: int) -> dict[str, float]:
    """Nanoseconds per :meth:`CallMetrics.observe` call, for a result and for an error."""
    observer = metrics.CallMetrics()
    error = b'{"code":-32000,"message":"Server error","data":{"type":"ValueError"}}'
    figures = {}
    for label, ok, payload in (("result", True, b'"x"'), ("error", False, error)):
        observer.observe("bench.method", ok, payload, 0.001)
        started = time.perf_counter_ns()
        for _ in range(count):
            observer.observe("bench.method", ok, payload, 0.001)
        figures[label] = (time.perf_counter_ns() - started) / count
    return figures


async def _core_round(core: JsonRpcCore, calls: int, concurrency: int) -> float:
    semaphore = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with semaphore:
            await core.handle(ECHO)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    return calls / (time.perf_counter() - started)


async def bench_core(calls: int, rounds: int, processes: int, concurrency: int) -> dict[str, float]:
    """Calls per second through the core and a real pool, best round with metrics on and off."""
    pool = Pool(PROJECT_DIR / "methods", processes, 0, 100000)
    await pool.start()
    best = {"on": 0.0, "off": 0.0}
    observer = metrics.CallMetrics()
    try:
        for number in range(rounds):
            for mode in _order(number):
                on = mode == "on"
                pool.observer = observer.observe_pool_call if on else None
                core = JsonRpcCore(pool, 30.0, 100, observer=observer.observe if on else None)
                best[mode] = max(best[mode], await _core_round(core, calls, concurrency))
    finally:
        await pool.shutdown(5.0)
    return best


def bench_http(seconds: int, rounds: int, processes: int) -> dict[str, float] | None:
    """Requests per second of the real server under wrk, metrics on and off (best round)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    best = {"on": 0.0, "off": 0.0}
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "echo.lua"
        script.write_text(WRK_SCRIPT)
        for number in range(rounds):
            for mode in _order(number):
                server = ServerProcess(
                    PROJECT_DIR / "methods",
                    Path(folder) / (f"{mode}.log"),
                    env={
                        "SBUSR_METRICS": "1" if mode == "on" else "0",
                        "SBUSR_ACCESS_LOG": "0",
                        "SBUSR_POOL_PROCESSES": str(processes),
                        "SBUSR_QUEUE_MAXSIZE": "100000",
                    },
                )
                try:
                    output = subprocess.run(
                        [
                            wrk,
                            "-t1",
                            "-c32",
                            f"-d{seconds}s",
                            "-s",
                            str(script),
                            server.url + "/rpc",
                        ],
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                finally:
                    server.stop()
                found = re.search(r"Requests/sec:\s+([\d.]+)", output)
                if found:
                    best[mode] = max(best[mode], float(found.group(1)))
    return best


def main(argv: list[str]) -> int:
    """Run the three measurements and print them; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000, help="calls per core round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per mode")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="workers")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight (core)")
    parser.add_argument("--seconds", type=int, default=5, help="duration of one wrk round")
    arguments = parser.parse_args(argv)
    observe = bench_observe(200000)
    print(
        "observe: {:.0f} ns per result, {:.0f} ns per error".format(
            observe["result"], observe["error"]
        )
    )
    core = uvloop.run(
        bench_core(arguments.calls, arguments.rounds, arguments.processes, arguments.concurrency)
    )
    print(
        "core: metrics off {:.0f} calls/s, on {:.0f} calls/s ({:+.1f}%)".format(
            core["off"], core["on"], 100.0 * (core["on"] - core["off"]) / core["off"]
        )
    )
    http = bench_http(arguments.seconds, arguments.rounds, arguments.processes)
    if http is None:
        print("http: skipped (no wrk on PATH)")
    else:
        print(
            "http: metrics off {:.0f} req/s, on {:.0f} req/s ({:+.1f}%)".format(
                http["off"], http["on"], 100.0 * (http["on"] - http["off"]) / http["off"]
            )
        )
    print(
        json.dumps({"observe_ns": observe, "core_calls_per_s": core, "http_requests_per_s": http})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
