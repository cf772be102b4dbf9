#!/usr/bin/env python3
"""Idle memory of a server with 2 workers: RSS and PSS of every process, from /proc.

    python bench/memory_bench.py [--processes 2] [--methods DIR] [--settle-s 2]

Starts ``run.py`` at its default settings (apart from ``SBUSR_POOL_PROCESSES``), waits until
``/sys/status`` shows the workers serving, makes one call (``greetings.greet`` when the shipped
methods folder is served) so that lazy imports of the call path have happened, waits
``--settle-s`` seconds, then prints per process its role, RSS and PSS in MB and the totals.
RSS counts pages shared between the forked processes once per process; PSS splits them, so the
PSS total is what the machine really spends. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.http_bench import PROJECT_DIR, free_port, process_tree, start, stop_all  # noqa: E402

KIB_PER_MB = 1024


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of ``pid`` in KiB, from /proc/<pid>/smaps_rollup; (0, 0) when it is gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def role(pid: int, server_pid: int) -> str:
    """A short name for ``pid``: server, or the first words of its command line."""
    if pid == server_pid:
        return "server"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            words = cmdline.read().split(b"\0")
    except OSError:
        return "?"
    return " ".join(word.decode(errors="replace") for word in words[:4] if word)[:60]


def get_json(url: str) -> object:
    """GET ``url`` and decode its JSON body."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def call(port: int, method: str, params: object) -> object:
    """POST one JSON-RPC call; returns the decoded response."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/rpc", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_workers(port: int, processes: int, timeout_s: float = 30.0) -> None:
    """Poll /sys/status until ``processes`` workers are listed; raises TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = get_json(f"http://127.0.0.1:{port}/sys/status")
        workers = status.get("workers", []) if isinstance(status, dict) else []
        if len(workers) >= processes:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{processes} workers not up within {timeout_s} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--methods", default=str(PROJECT_DIR / "methods"))
    parser.add_argument("--settle-s", type=float, default=2.0)
    arguments = parser.parse_args()
    port = free_port()
    server = start(
        [sys.executable, "run.py", "--port", str(port), "--methods", arguments.methods],
        port,
        env={"SBUSR_POOL_PROCESSES": str(arguments.processes)},
    )
    try:
        wait_workers(port, arguments.processes)
        if Path(arguments.methods, "greetings.py").exists():
            call(port, "greetings.greet", {"name": "memory"})
        time.sleep(arguments.settle_s)
        total_rss = total_pss = 0
        print(f"{'pid':>8}  {'RSS MB':>8}  {'PSS MB':>8}  process")
        for pid in process_tree(server.pid):
            rss, pss = memory_kib(pid)
            if not rss:
                continue
            total_rss += rss
            total_pss += pss
            name = role(pid, server.pid)
            print(f"{pid:>8}  {rss / KIB_PER_MB:8.1f}  {pss / KIB_PER_MB:8.1f}  {name}")
        print(f"{'total':>8}  {total_rss / KIB_PER_MB:8.1f}  {total_pss / KIB_PER_MB:8.1f}")
    finally:
        stop_all([server])


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as error:
        sys.exit(error.returncode)
