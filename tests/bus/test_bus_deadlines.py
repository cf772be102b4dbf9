"""Caller deadlines on the bus (field ``deadline_ms``), end to end with a real Redis: an entry
past its deadline is acked without running, answered -32004 only while its caller may still
read the reply list; a client that gave up leaves nothing to run for a server started later."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from busclient import AsyncBusClient, BusClient, BusTimeout
from tests.bus.test_bus_rpc import GROUP, STREAM, receive, send
from tests.support import PROJECT_DIR, ServerProcess, wait_for

PROBE = Path(__file__).parent.parent / "fixtures" / "deadline_probe.py"
NOTIFY_TTL_MS = 10000


@pytest.fixture(autouse=True)
def probe_methods(methods_dir: Path) -> Path:
    """Every server of this module serves the deadline probe methods too."""
    shutil.copy(PROBE, methods_dir / "deadline_probe.py")
    return methods_dir


def send_with_deadline(raw: redis.Redis, payload: object, deadline: object, reply_to: str) -> str:
    """XADD one request entry with a ``deadline_ms`` field; returns its id."""
    entry_id = raw.xadd(
        STREAM, {"data": json.dumps(payload), "reply_to": reply_to, "deadline_ms": str(deadline)}
    )
    assert isinstance(entry_id, bytes)
    return entry_id.decode()


def acked(raw: redis.Redis, entry_id: str) -> bool:
    """True once the group read up to ``entry_id`` and holds nothing pending."""
    groups = [group for group in raw.xinfo_groups(STREAM) if group["name"] == GROUP.encode()]
    return (
        bool(groups)
        and groups[0]["last-delivered-id"].decode() == entry_id
        and raw.xpending(STREAM, GROUP)["pending"] == 0
    )


def only_entry(raw: redis.Redis) -> tuple[str, dict[bytes | str, bytes | str]]:
    """The id and fields of the one entry of the request stream."""
    entries = raw.xrange(STREAM)
    assert isinstance(entries, list) and len(entries) == 1, entries
    entry_id, fields = entries[0]
    assert isinstance(entry_id, bytes) and isinstance(fields, dict)
    return entry_id.decode(), fields


def mark_call(marker: Path, request_id: object = 1) -> dict[str, object]:
    return {
        "jsonrpc": "2.0",
        "method": "deadline_probe.mark_then_sleep",
        "params": [str(marker), 0],
        "id": request_id,
    }


@pytest.mark.parametrize(
    "missed_by_ms, answered",
    [(1000, True), (NOTIFY_TTL_MS + 5000, False)],
    ids=["within-notify-ttl", "past-notify-ttl"],
)
def test_an_entry_past_its_deadline_is_acked_without_running(
    bus_server: Callable[..., ServerProcess],
    raw: redis.Redis,
    tmp_path: Path,
    missed_by_ms: int,
    answered: bool,
) -> None:
    """-32004 while the caller may still read its reply list; after that, no reply at all."""
    bus_server(env={"SBUSR_NOTIFY_TTL_MS": str(NOTIFY_TTL_MS)})
    marker = tmp_path / "never"
    deadline_ms = round(time.time() * 1000) - missed_by_ms
    entry_id = send_with_deadline(raw, mark_call(marker, "late"), deadline_ms, "test:late")
    wait_for(lambda: acked(raw, entry_id), message="the expired entry to be acked")
    if answered:
        answer = receive(raw, "test:late")
        assert answer["id"] == "late"
        assert answer["error"]["code"] == -32004
        assert answer["error"]["data"]["missed_by_ms"] >= missed_by_ms
    else:
        assert raw.llen("test:late") == 0
    send(raw, {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 2}, "test:next")
    assert receive(raw, "test:next")["result"] == 3
    assert raw.llen("test:late") == 0
    assert not marker.exists()


def test_a_bad_deadline_field_is_answered_32600(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis, tmp_path: Path
) -> None:
    bus_server()
    marker = tmp_path / "never"
    send_with_deadline(raw, mark_call(marker), "tomorrow", "test:reply")
    answer = receive(raw)
    assert answer["id"] is None
    assert answer["error"]["code"] == -32600
    assert "deadline_ms" in answer["error"]["data"]["message"]
    assert not marker.exists()


def call_with_sync_client(url: str, marker: Path) -> None:
    with BusClient(url) as bus, pytest.raises(BusTimeout):
        bus.call("deadline_probe.mark_then_sleep", [str(marker), 0], timeout_s=0.3)


def call_with_async_client(url: str, marker: Path) -> None:
    async def call() -> None:
        async with AsyncBusClient(url) as bus:
            await bus.call("deadline_probe.mark_then_sleep", [str(marker), 0], timeout_s=0.3)

    with pytest.raises(BusTimeout):
        asyncio.run(call())


def call_with_command_line(url: str, marker: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "run.py"), "call", "--bus", "--url", url]
        + ["--timeout", "0.3", "deadline_probe.mark_then_sleep", str(marker), "0"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "no reply" in done.stderr


@pytest.mark.parametrize(
    "caller", [call_with_sync_client, call_with_async_client, call_with_command_line]
)
def test_a_call_whose_client_timed_out_is_not_run_by_a_server_started_later(
    bus_server: Callable[..., ServerProcess],
    raw: redis.Redis,
    redis_url: str,
    tmp_path: Path,
    caller: Callable[[str, Path], None],
) -> None:
    marker = tmp_path / "never"
    caller(redis_url, marker)
    entry_id, fields = only_entry(raw)
    assert b"deadline_ms" in fields
    bus_server()
    wait_for(lambda: acked(raw, entry_id), message="the expired entry to be acked")
    assert not marker.exists()


def test_a_client_may_send_no_deadline(
    bus_server: Callable[..., ServerProcess],
    raw: redis.Redis,
    redis_url: str,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    with BusClient(redis_url, send_deadline=False) as bus, pytest.raises(BusTimeout):
        bus.call("deadline_probe.mark_then_sleep", [str(marker), 0], timeout_s=0.1)
    _, fields = only_entry(raw)
    assert b"deadline_ms" not in fields
    bus_server()
    wait_for(marker.exists, message="the call without deadline to run")
