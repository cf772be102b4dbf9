#!/usr/bin/env python3
"""Cost of params from type hints, per call, in the worker's own call path.

Runs :meth:`executor.worker.Runner.run` (resolve from the cache, bind or validate the params,
call, encode the result: what a worker thread does per call) on four ``echo`` methods of a
temporary methods package:

* ``echo_plain(txt)``: no hints (the path without validation);
* ``echo_str(txt: str) -> str``: one hinted parameter, converted by pydantic;
* ``echo_any(txt: Any) -> Any``: hinted with ``Any`` (validation that accepts anything);
* ``echo_order(order: Order) -> Order``: a dataclass with three fields, built from an object.

Rounds alternate between the methods so that drift hits all; the best round of each is kept.
Prints microseconds per call and the difference to ``echo_plain``.

Usage: ``.venv/bin/python bench/params_bench.py [--calls 50000] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from executor.worker import Runner, import_methods  # noqa: E402

METHODS = """
import dataclasses
from typing import Any


@dataclasses.dataclass
class Order:
    sku: str
    qty: int
    note: str | None = None


def echo_plain(txt):
    return txt


def echo_str(txt: str) -> str:
    return txt


def echo_any(txt: Any) -> Any:
    return txt


def echo_order(order: Order) -> Order:
    return order
"""

CASES: dict[str, list[object]] = {
    "echo_plain": ["hello"],
    "echo_str": ["hello"],
    "echo_any": ["hello"],
    "echo_order": [{"sku": "tea", "qty": "2"}],
}


def per_call_us(runner: Runner, name: str, params: list[object], calls: int) -> float:
    """Microseconds per ``runner.run(name, params)``, over ``calls`` calls."""
    run = runner.run
    started = time.perf_counter()
    for _ in range(calls):
        run(name, params)
    return (time.perf_counter() - started) / calls * 1e6


def main() -> int:
    """Parse the options, run the rounds, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50000, help="calls per method per round")
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        methods_dir = Path(folder) / "methods"
        methods_dir.mkdir()
        (methods_dir / "__init__.py").write_text(METHODS)
        errors = import_methods(methods_dir)
        if errors:
            raise SystemExit(f"methods failed to import: {errors}")
        loop = asyncio.new_event_loop()
        runner = Runner(debug=False, loop=loop)
        for name, params in CASES.items():
            kind, payload = runner.run(name, params)
            print(f"{name}: {payload.decode()}")
            per_call_us(runner, name, params, 1000)  # warm up
        best = {name: float("inf") for name in CASES}
        for round_number in range(options.rounds):
            names = list(CASES) if round_number % 2 == 0 else list(reversed(CASES))
            for name in names:
                best[name] = min(best[name], per_call_us(runner, name, CASES[name], options.calls))
        loop.close()
    base = best["echo_plain"]
    for name, value in best.items():
        print(f"{name:12s} {value:6.2f} us/call  (+{value - base:5.2f} us over echo_plain)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
