#!/usr/bin/env python3
"""Benchmark: sbusr bus calls vs Celery 5 on the same Redis, for an ``echo`` method.

Starts its own redis-server (loopback, spare port, no persistence), an sbusr server with the
bus on (``run.py``, ``--workers`` processes) and a Celery worker (prefork, ``--workers``
processes) on the same Redis, then measures, in one run:

* throughput: calls/s with N concurrent callers (sbusr: ``AsyncBusClient`` in
  ``--client-processes`` processes; Celery: ``echo.delay(x).get()`` in threads of as many
  processes), for each N of ``--concurrency``;
* latency at a fixed rate (``--rate`` calls/s, open loop: each call is sent on schedule,
  whether or not earlier ones were answered): p50 / p99 / max, milliseconds.

Prints a table. A benchmark, not a test: figures depend on the machine and its load.

    .venv/bin/pip install -r bench/requirements.txt
    .venv/bin/python bench/bus_bench.py --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    """Poll ``condition()`` every 50 ms until true; exit the bench after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        time.sleep(0.05)


def pings(port: int) -> bool:
    """True when a Redis answers PING on ``port``."""
    import redis

    try:
        return bool(redis.Redis(port=port).ping())
    except redis.exceptions.ConnectionError:
        return False


# ---------------------------------------------------------------------- sbusr side
async def _bus_closed_loop(url: str, concurrency: int, seconds: float) -> int:
    from busclient import AsyncBusClient

    done = 0
    async with AsyncBusClient(url) as bus:
        await bus.call("echo", ["warm-up"])
        deadline = time.perf_counter() + seconds

        async def caller() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await bus.call("echo", ["x"])
                done += 1

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    return done


def bus_closed_loop(args: tuple[str, int, float]) -> int:
    """One client process: ``concurrency`` tasks calling echo for ``seconds``; returns calls."""
    import uvloop

    return uvloop.run(_bus_closed_loop(*args))


async def _bus_fixed_rate(url: str, rate: float, seconds: float) -> list[float]:
    from busclient import AsyncBusClient

    latencies: list[float] = []
    async with AsyncBusClient(url) as bus:
        for _ in range(50):
            await bus.call("echo", ["warm-up"])
        clock = time.perf_counter  # uvloop's loop.time() ticks in whole milliseconds
        start = clock() + 0.05
        total = int(rate * seconds)
        tasks = []

        async def one(at: float) -> None:
            await bus.call("echo", ["x"])
            latencies.append((clock() - at) * 1000.0)

        for number in range(total):
            at = start + number / rate
            delay = at - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(at)))
        await asyncio.gather(*tasks)
    return latencies


def bus_fixed_rate(url: str, rate: float, seconds: float) -> list[float]:
    """Send ``rate`` calls/s for ``seconds`` (open loop); returns each latency, milliseconds."""
    import uvloop

    return uvloop.run(_bus_fixed_rate(url, rate, seconds))


# ---------------------------------------------------------------------- Celery side
def celery_closed_loop(args: tuple[str, int, float]) -> int:
    """One client process: ``threads`` threads calling ``echo.delay(x).get()``; returns calls."""
    url, threads, seconds = args
    os.environ["SBUSR_BENCH_CELERY_URL"] = url
    from bench.celery_app import echo

    echo.delay("warm-up").get(timeout=30)
    deadline = time.perf_counter() + seconds

    def caller() -> int:
        count = 0
        while time.perf_counter() < deadline:
            echo.delay("x").get(timeout=30)
            count += 1
        return count

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(lambda _: caller(), range(threads)))


def celery_fixed_rate(url: str, rate: float, seconds: float) -> list[float]:
    """As :func:`bus_fixed_rate`, through Celery (256 threads send on schedule)."""
    os.environ["SBUSR_BENCH_CELERY_URL"] = url
    from bench.celery_app import echo

    for _ in range(20):
        echo.delay("warm-up").get(timeout=30)
    latencies: list[float] = []
    start = time.perf_counter() + 0.05
    total = int(rate * seconds)

    def one(at: float) -> None:
        echo.delay("x").get(timeout=60)
        latencies.append((time.perf_counter() - at) * 1000.0)

    with concurrent.futures.ThreadPoolExecutor(256) as pool:
        futures = []
        for number in range(total):
            at = start + number / rate
            delay = at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(one, at))
        for future in futures:
            future.result()
    return latencies


# ---------------------------------------------------------------------- harness
def throughput(
    function: Callable[[tuple[str, int, float]], int],
    url: str,
    concurrency: int,
    processes: int,
    seconds: float,
) -> float:
    """Run ``function`` in ``processes`` processes sharing ``concurrency`` callers; calls/s."""
    per_process = max(1, concurrency // processes)
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        calls = sum(pool.map(function, [(url, per_process, seconds)] * processes))
    elapsed = time.perf_counter() - started
    return calls / max(seconds, 1e-9) if elapsed < seconds * 3 else calls / elapsed


def percentiles(latencies: list[float]) -> tuple[float, float, float]:
    """``(p50, p99, max)`` of the latencies, in their unit."""
    ordered = sorted(latencies)
    return (
        statistics.median(ordered),
        ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        ordered[-1],
    )


def main() -> int:
    """Start Redis, sbusr and Celery, measure, print the table; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measurement, s")
    parser.add_argument(
        "--concurrency", default="1,16,64,256", help="concurrent callers, comma-separated"
    )
    parser.add_argument(
        "--client-processes", type=int, default=2, help="processes the callers run in"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 2,
        help="sbusr pool / Celery worker processes",
    )
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="fixed rate of the latency run, calls/s"
    )
    parser.add_argument("--skip-celery", action="store_true")
    args = parser.parse_args()
    concurrencies = [int(n) for n in args.concurrency.split(",")]
    load_before = os.getloadavg()[0]  # the machine's own load, before the bench adds its processes

    folder = Path(tempfile.mkdtemp(prefix="sbusr-bench-"))
    redis_port = free_port()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(
            subprocess.Popen(
                [
                    shutil.which("redis-server") or "redis-server",
                    "--port",
                    str(redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(folder),
                ],
                stdout=subprocess.DEVNULL,
            )
        )
        wait_until(lambda: pings(redis_port), 10, "redis-server")
        bus_url = f"redis://127.0.0.1:{redis_port}/0"
        celery_url = f"redis://127.0.0.1:{redis_port}/1"
        environment = {
            **os.environ,
            "SBUSR_REDIS_URL": bus_url,
            "SBUSR_PORT": str(free_port()),
            "SBUSR_POOL_PROCESSES": str(args.workers),
            "SBUSR_POOL_MAXTASKSPERCHILD": "0",
            "SBUSR_ACCESS_LOG": "0",
            "SBUSR_QUEUE_MAXSIZE": "2000",
        }
        processes.append(
            subprocess.Popen(
                [sys.executable, str(PROJECT_DIR / "run.py"), "-W"],
                cwd=PROJECT_DIR,
                env=environment,
                stderr=open(folder / "sbusr.log", "wb"),  # noqa: SIM115 (the child writes it)
            )
        )
        import redis

        raw = redis.Redis(port=redis_port)
        wait_until(
            lambda: raw.exists("sbusr:rpc") and raw.xinfo_groups("sbusr:rpc"),
            60,
            "the sbusr bus consumer",
        )
        rows: list[tuple[str, str, str]] = []
        bus_rates = {}
        for concurrency in concurrencies:
            bus_rates[concurrency] = throughput(
                bus_closed_loop,
                bus_url,
                concurrency,
                min(args.client_processes, concurrency),
                args.seconds,
            )
        p50, p99, worst = percentiles(bus_fixed_rate(bus_url, args.rate, args.seconds))
        rows.append(
            (
                "sbusr bus",
                f"{args.rate:.0f}/s fixed rate",
                f"p50 {p50:.2f} ms  p99 {p99:.2f} ms  max {worst:.1f} ms",
            )
        )
        celery_rates = {}
        if not args.skip_celery:
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "bench.celery_app",
                        "worker",
                        "--pool",
                        "prefork",
                        "--concurrency",
                        str(args.workers),
                        "--loglevel",
                        "WARNING",
                        "--without-gossip",
                        "--without-mingle",
                        "--without-heartbeat",
                    ],
                    cwd=PROJECT_DIR,
                    env={**os.environ, "SBUSR_BENCH_CELERY_URL": celery_url},
                    stdout=subprocess.DEVNULL,
                    stderr=open(folder / "celery.log", "wb"),  # noqa: SIM115 (the child writes it)
                )
            )
            for concurrency in concurrencies:
                celery_rates[concurrency] = throughput(
                    celery_closed_loop,
                    celery_url,
                    concurrency,
                    min(args.client_processes, concurrency),
                    args.seconds,
                )
            p50, p99, worst = percentiles(celery_fixed_rate(celery_url, args.rate, args.seconds))
            rows.append(
                (
                    "celery 5",
                    f"{args.rate:.0f}/s fixed rate",
                    f"p50 {p50:.2f} ms  p99 {p99:.2f} ms  max {worst:.1f} ms",
                )
            )
        print(
            f"\nsbusr bus vs Celery 5, echo, {args.workers} worker processes each, "
            f"{os.cpu_count() or 0} CPUs (load average {load_before:.1f} before the bench), "
            f"{args.seconds:.0f} s per figure"
        )
        print(f"{'callers':<12} {'sbusr calls/s':>14} {'celery calls/s':>14} {'ratio':>8}")
        for concurrency in concurrencies:
            celery = celery_rates.get(concurrency)
            celery_text = f"{celery:.0f}" if celery else "-"
            ratio_text = f"{bus_rates[concurrency] / celery:.1f}x" if celery else "-"
            print(
                f"{concurrency:<12d} {bus_rates[concurrency]:14.0f} "
                f"{celery_text:>14} {ratio_text:>8}"
            )
        for name, what, figures in rows:
            print(f"{name:<12} {what:<20} {figures}")
        return 0
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
        for process in reversed(processes):
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
