#!/usr/bin/env python3
"""HTTP benchmark: sbusr's full call path against FastAPI and bare Tornado, on one core.

    python bench/http_bench.py [--seconds 10] [--rounds 3] [--connections 100]
                               [--extra] [--recycling] [--before DIR]
                               [--only sbusr,sbusr-recycling] [--no-batch]

In one run it starts, pinned with taskset to CPU 0:
  * ``bare``: bench/bare_delegate.py, a bare Tornado message delegate answering a constant
    JSON body on uvloop: the ceiling of a Tornado process;
  * ``fastapi``: bench/fastapi_app.py on uvicorn (one process, ``--loop uvloop --http
    httptools --no-access-log``), ``POST /health`` answering a constant JSON body: the anchor
    users know (needs ``pip install -r bench/requirements.txt``);
  * ``minimal``: bench/minimal_server.py on uvloop, a ``tornado.web`` handler that answers a
    JSON-RPC echo in-process;
  * ``sbusr``: ``run.py`` with one worker (server and worker on the same core), access log off,
    recycling off, on uvloop (the default) — and ``sbusr-asyncio`` with SBUSR_UVLOOP=0; with
    ``--extra``, also ``sbusr-no-metrics`` (SBUSR_METRICS=0) and ``sbusr-access-log``
    (SBUSR_ACCESS_LOG=1), to show what metrics and the access log cost on the hot path; with
    ``--recycling``, also ``sbusr-recycling`` (the default SBUSR_POOL_MAXTASKSPERCHILD=1000
    instead of 0); with ``--before DIR``, also ``sbusr-before``: the same settings on the
    sbusr tree in DIR (e.g. ``git worktree add /tmp/before <commit>``), for a before/after
    in one run;
(``--only`` keeps the servers named, e.g. ``--only sbusr,sbusr-recycling --recycling --rounds
10 --no-batch`` for the cost of recycling alone)
and drives each with ``wrk -t1 -c100`` pinned to CPU 1, interleaving the servers round by
round so that drift of the machine hits all alike. It prints requests/s (median of the
rounds) for each, the ratio to ``fastapi``, and the calls/s of 100-call batches of ``echo``
through sbusr (and sbusr-before); beside each rate, the CPU time the server and its workers
spent per request (from /proc; workers started or ended during the run count too), which stays
meaningful when other work shares the machine: with the server's core saturated,
rate ≈ 1 / CPU time per request.

Needs wrk (installed with apt-get when missing and running as root) and taskset. This is a
measurement, not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
SERVER_CPU, LOAD_CPU = "0", "1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is needed: apt-get install wrk")
    return found


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"a server exited early with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit(f"a server did not listen on {port}")


def start(
    command: list[str],
    port: int,
    env: dict[str, str] | None = None,
    cwd: Path = PROJECT_DIR,
) -> subprocess.Popen[bytes]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SBUSR_")}
    environment.update(env or {})
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, *command],
        cwd=cwd,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, process)
    except BaseException:
        process.kill()
        raise
    return process


def stop_all(processes: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every server, wait up to 30 s for each, then SIGKILL what is left."""
    processes = list(processes)
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def wrk_script(directory: Path, name: str, body: str) -> Path:
    path = directory / (name + ".lua")
    path.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return path


CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the server's workers), from /proc."""
    tree, index = [pid], 0
    while index < len(tree):
        try:
            with open(f"/proc/{tree[index]}/task/{tree[index]}/children") as children:
                tree.extend(int(child) for child in children.read().split())
        except OSError:
            pass
        index += 1
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """CPU time of the live processes ``pids``, seconds: each one's user + system time and
    that of its children it has reaped (``cutime``/``cstime``), so a worker that ended (the
    template reaps it) still counts."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(field) for field in fields[11:15])
    return total / CLOCK_TICKS_PER_S


def run_wrk(wrk: str, url: str, script: Path, seconds: int, connections: int) -> tuple[float, int]:
    """Drive ``url`` for ``seconds``; return (requests/s, requests completed)."""
    output = subprocess.run(
        [
            "taskset",
            "-c",
            LOAD_CPU,
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        sys.exit(f"wrk saw {errors.group(1)} failed responses:\n{output}")
    completed = re.search(r"(\d+) requests in", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if completed is None or rate is None:
        sys.exit(f"wrk printed no rate:\n{output}")
    return float(rate.group(1)), int(completed.group(1))


def measure(
    wrk: str,
    process: subprocess.Popen[bytes],
    url: str,
    script: Path,
    seconds: int,
    connections: int,
) -> tuple[float, float]:
    """Return (requests/s, CPU microseconds per request of the server and its workers)."""
    before = cpu_seconds(process_tree(process.pid))
    rate, completed = run_wrk(wrk, url, script, seconds, connections)
    # the tree again: workers started during the run count, those that ended are in the
    # cutime/cstime of the process that reaped them
    return rate, (cpu_seconds(process_tree(process.pid)) - before) / completed * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument(
        "--extra",
        action="store_true",
        help="also measure sbusr without metrics and with the access log on",
    )
    parser.add_argument(
        "--recycling",
        action="store_true",
        help="also measure sbusr with recycling on (pool_maxtasksperchild 1000)",
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="also measure sbusr-before: the sbusr tree in this folder (e.g. a git worktree)",
    )
    parser.add_argument(
        "--only",
        help="measure only these servers, comma-separated (e.g. sbusr,sbusr-recycling: more "
        "rounds in the same time); the first one is then the baseline of the ratios",
    )
    parser.add_argument("--no-batch", action="store_true", help="skip the 100-call batches")
    arguments = parser.parse_args()
    wrk = ensure_wrk()
    python = sys.executable
    sbusr_env = {
        "SBUSR_POOL_PROCESSES": "1",
        "SBUSR_ACCESS_LOG": "0",
        "SBUSR_QUEUE_MAXSIZE": "10000",
        "SBUSR_POOL_MAXTASKSPERCHILD": "0",
    }
    variants = {"sbusr": sbusr_env, "sbusr-asyncio": {**sbusr_env, "SBUSR_UVLOOP": "0"}}
    if arguments.recycling:
        variants["sbusr-recycling"] = {
            k: v for k, v in sbusr_env.items() if k != "SBUSR_POOL_MAXTASKSPERCHILD"
        }
    if arguments.extra:
        variants["sbusr-no-metrics"] = {**sbusr_env, "SBUSR_METRICS": "0"}
        variants["sbusr-access-log"] = {**sbusr_env, "SBUSR_ACCESS_LOG": "1"}
    names = ["bare", "fastapi", "minimal", *variants]
    if arguments.before:
        names.insert(3, "sbusr-before")
    ports = {name: free_port() for name in names}
    urls = {name: f"http://127.0.0.1:{port}/rpc" for name, port in ports.items()}
    urls["fastapi"] = f"http://127.0.0.1:{ports['fastapi']}/health"
    #: name -> (command, environment, working directory)
    commands: dict[str, tuple[list[str], dict[str, str] | None, Path]] = {
        "bare": ([python, "bench/bare_delegate.py", str(ports["bare"])], None, PROJECT_DIR),
        "fastapi": (
            [
                python,
                "-m",
                "uvicorn",
                "bench.fastapi_app:app",
                "--port",
                str(ports["fastapi"]),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            None,
            PROJECT_DIR,
        ),
        "minimal": (
            [python, "bench/minimal_server.py", str(ports["minimal"]), "uvloop"],
            None,
            PROJECT_DIR,
        ),
    }
    if arguments.before:
        commands["sbusr-before"] = (
            [python, "run.py", "--port", str(ports["sbusr-before"])],
            sbusr_env,
            arguments.before.resolve(),
        )
    for name, environment in variants.items():
        commands[name] = ([python, "run.py", "--port", str(ports[name])], environment, PROJECT_DIR)
    if arguments.only:
        chosen = arguments.only.split(",")
        unknown = sorted(set(chosen) - set(names))
        if unknown:
            sys.exit(f"unknown servers {unknown}; known: {names}")
        names = chosen
        commands = {name: commands[name] for name in names}
        urls = {name: urls[name] for name in names}
    baseline_name = "fastapi" if "fastapi" in names else names[0]
    batched = [
        name for name in ("sbusr-before", "sbusr") if name in commands and not arguments.no_batch
    ]
    results: dict[str, list[float]] = {
        name: [] for name in [*names, *(f"{name} batch x100" for name in batched)]
    }
    cpu: dict[str, list[float]] = {name: [] for name in results}
    servers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, (command, server_env, directory) in commands.items():
            servers[name] = start(command, ports[name], server_env, cwd=directory)
        with tempfile.TemporaryDirectory() as scratch:
            single = wrk_script(
                Path(scratch),
                "single",
                json.dumps({"jsonrpc": "2.0", "method": "echo", "params": ["hello"], "id": 1}),
            )
            batch = wrk_script(
                Path(scratch),
                "batch",
                json.dumps(
                    [
                        {"jsonrpc": "2.0", "method": "echo", "params": ["hello"], "id": n}
                        for n in range(100)
                    ]
                ),
            )
            for url in urls.values():  # warm up
                run_wrk(wrk, url, single, 2, arguments.connections)
            for round_number in range(arguments.rounds):
                for name in names:
                    rate, micros = measure(
                        wrk,
                        servers[name],
                        urls[name],
                        single,
                        arguments.seconds,
                        arguments.connections,
                    )
                    results[name].append(rate)
                    cpu[name].append(micros)
                    print(
                        f"round {round_number + 1}  {name:<22} {rate:9.0f} requests/s  "
                        f"{micros:6.1f} us CPU/request",
                        flush=True,
                    )
                for name in batched:
                    rate, micros = measure(
                        wrk,
                        servers[name],
                        urls[name],
                        batch,
                        arguments.seconds,
                        min(arguments.connections, 10),
                    )
                    results[f"{name} batch x100"].append(rate * 100)
                    cpu[f"{name} batch x100"].append(micros / 100)
                    print(
                        f"round {round_number + 1}  {name + ' batch x100':<22} "
                        f"{rate * 100:9.0f} calls/s     {micros / 100:6.1f} us CPU/call",
                        flush=True,
                    )
    finally:
        stop_all(servers.values())
    baseline = statistics.median(results[baseline_name])
    baseline_cpu = statistics.median(cpu[baseline_name])
    ratio_title = f"/{baseline_name}"
    print(
        f"\n{'server':<24} {'median rate':>14} {ratio_title:>8} {'CPU per request':>18} "
        f"{ratio_title:>8}"
    )
    for name, rates in results.items():
        median, micros = statistics.median(rates), statistics.median(cpu[name])
        if "batch" in name:
            print(f"{name:<24} {median:8.0f} calls/s {'':>8} {micros:11.1f} us/call")
        else:
            print(
                f"{name:<24} {median:10.0f} req/s {median / baseline:7.2f}x {micros:14.1f} us "
                f"{baseline_cpu / micros:7.2f}x"
            )


if __name__ == "__main__":
    main()
