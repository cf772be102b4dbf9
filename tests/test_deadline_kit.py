"""``kit.deadline_ms`` / ``kit.time_left_s`` in a method run by ``kit.testing`` (in a process of
its own, so that its methods folder is the probe's): the deadline a test gives is the one the
method reads, in a plain function's thread and in an ``async def`` method alike."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import PROJECT_DIR

PROBE = Path(__file__).parent / "fixtures" / "deadline_probe.py"

SCRIPT = """
import asyncio, json, time
from kit.testing import acall, call

deadline_ms = time.time() * 1000 + 60_000
print(json.dumps({
    "thread": call("deadline_probe.my_deadline", [], deadline_ms=deadline_ms),
    "task": asyncio.run(acall("deadline_probe.my_deadline_async", [], deadline_ms=deadline_ms)),
    "none": call("deadline_probe.my_deadline", []),
    "given": deadline_ms,
}))
"""


def test_kit_testing_gives_the_method_its_deadline(tmp_path: Path) -> None:
    methods = tmp_path / "methods"
    methods.mkdir()
    (methods / "__init__.py").write_text("")
    shutil.copy(PROBE, methods / "deadline_probe.py")
    environment = {**os.environ, "SBUSR_METHODS_DIR": str(methods)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=PROJECT_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    for where in ("thread", "task"):
        assert seen[where]["deadline_ms"] == seen["given"]
        assert 0 < seen[where]["time_left_s"] <= 60
    assert seen["none"] == {"deadline_ms": None, "time_left_s": None}
