#!/usr/bin/env python3
"""Idle memory of a server with 2 workers: RSS and PSS of every process, from /proc.

    python bench/memory_bench.py [--processes 2] [--methods DIR] [--settle-s 2] [--before DIR]

Starts ``run.py`` at its default settings (apart from ``SBUSR_POOL_PROCESSES``), waits until
``/sys/status`` shows the workers serving, makes one call (``greetings.greet`` when the shipped
methods folder is served) so that lazy imports of the call path have happened, waits
``--settle-s`` seconds, then prints per process its role (server; template: the process that
imports no user code; generation template: its fork that imported the methods and forks the
workers; worker: as /sys/status lists them), RSS and PSS in MB, the sum of the server and its
workers (what the pool issue's target counts) and the total with the templates. RSS is what ``ps``
shows: pages shared between the forked processes count once per process; PSS splits them, so
the PSS total is what the machine really spends. With ``--before DIR``, the same is measured
first on the sbusr tree in DIR (e.g. ``git worktree add /tmp/before <commit>``; its methods
folder, unless ``--methods`` names one). A measurement, not a test.
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


def parent_of(pid: int) -> int:
    """The parent pid of ``pid`` (0 when it is gone), from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def role(pid: int, server_pid: int, worker_pids: set[int]) -> str:
    """A short name for ``pid``: server, worker (listed by /sys/status), template (the server's
    child that imports no user code), generation template (its child that imported the
    methods and forks a generation's workers), or the first words of its command line."""
    if pid == server_pid:
        return "server"
    if pid in worker_pids:
        return "worker"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            words = [word.decode(errors="replace") for word in cmdline.read().split(b"\0")]
    except OSError:
        return "?"
    if "executor.zygote" in words:
        return "template" if parent_of(pid) == server_pid else "generation template"
    return " ".join(word for word in words[:4] if word)[:60]


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


def measure(project: Path, methods: str, processes: int, settle_s: float) -> None:
    """Start the sbusr of ``project``, wait until idle, print the table (module doc), stop it."""
    port = free_port()
    server = start(
        [sys.executable, "run.py", "--port", str(port), "--methods", methods],
        port,
        env={"SBUSR_POOL_PROCESSES": str(processes)},
        cwd=project,
    )
    try:
        wait_workers(port, processes)
        if Path(methods, "greetings.py").exists():
            call(port, "greetings.greet", {"name": "memory"})
        time.sleep(settle_s)
        status = get_json(f"http://127.0.0.1:{port}/sys/status")
        listed = status.get("workers", []) if isinstance(status, dict) else []
        worker_pids = {worker["pid"] for worker in listed if isinstance(worker, dict)}
        total_rss = total_pss = served_rss = served_pss = 0
        print(f"{'pid':>8}  {'RSS MB':>8}  {'PSS MB':>8}  process")
        for pid in process_tree(server.pid):
            rss, pss = memory_kib(pid)
            if not rss:
                continue
            name = role(pid, server.pid, worker_pids)
            total_rss += rss
            total_pss += pss
            if name in ("server", "worker"):
                served_rss += rss
                served_pss += pss
            print(f"{pid:>8}  {rss / KIB_PER_MB:8.1f}  {pss / KIB_PER_MB:8.1f}  {name}")
        served = f"{served_rss / KIB_PER_MB:8.1f}  {served_pss / KIB_PER_MB:8.1f}"
        print(f"{'':>8}  {served}  server + workers")
        print(f"{'total':>8}  {total_rss / KIB_PER_MB:8.1f}  {total_pss / KIB_PER_MB:8.1f}")
    finally:
        stop_all([server])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--methods", help="methods folder (default: each tree's own)")
    parser.add_argument("--settle-s", type=float, default=2.0)
    parser.add_argument(
        "--before",
        type=Path,
        help="first measure the sbusr tree in this folder (e.g. a git worktree)",
    )
    arguments = parser.parse_args()
    projects = [("sbusr", PROJECT_DIR)]
    if arguments.before:
        projects.insert(0, ("sbusr-before", arguments.before.resolve()))
    for name, project in projects:
        if arguments.before:
            print(f"{name} ({project})")
        methods = arguments.methods or str(project / "methods")
        measure(project, methods, arguments.processes, arguments.settle_s)


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as error:
        sys.exit(error.returncode)
