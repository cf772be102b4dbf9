"""Dead letters: listed, replayed (the caller gets its answer), dropped; the retention bound;
``run.py deadletters``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import redis

from tests.bus.test_bus_rpc import DEAD, GROUP, STREAM, receive, send
from tests.support import PROJECT_DIR, ServerProcess, StartServer, wait_for

REPLAYS = "sbusr:rpc:dead:replays"


def dead_letter(raw: redis.Redis, method: str = "add", params: Any = (1, 2)) -> str:
    """Add a dead letter the way the DEAD_LETTER script writes one; returns its entry id."""
    data = json.dumps({"jsonrpc": "2.0", "method": method, "params": list(params), "id": "late"})
    entry_id = raw.xadd(
        DEAD,
        {
            "reason": "delivered 5 times without an answer (max_deliveries 5)",
            "entry_id": "1700000000000-0",
            "deliveries": 5,
            "data": data,
            "reply_to": "test:reply",
        },
    )
    assert isinstance(entry_id, bytes)
    return entry_id.decode()


def dead_ids(raw: redis.Redis) -> list[str]:
    """The entry ids of the dead-letter stream, oldest first."""
    entries: Any = raw.xrange(DEAD)
    return [entry_id.decode() for entry_id, _ in entries]


def test_an_entry_over_max_deliveries_is_listed_newest_first(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    older = dead_letter(raw, "echo", ["old"])
    raw.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    entry_id = send(raw, {"jsonrpc": "2.0", "method": "add", "params": [2, 3], "id": 1})
    raw.xreadgroup(GROUP, "ghost", {STREAM: ">"})
    raw.xclaim(STREAM, GROUP, "ghost", 0, [entry_id], retrycount=3)
    server = bus_server(env={"SBUSR_CLAIM_IDLE_MS": "200", "SBUSR_MAX_DELIVERIES": "3"})
    wait_for(lambda: raw.xlen(DEAD) == 2, message="the dead letter")
    page = server.http.get("/api/deadletters").json()
    assert page["total"] == 2 and page["next_before"] is None
    newest, oldest = page["deadletters"]
    assert newest["request_entry_id"] == entry_id and oldest["entry_id"] == older
    assert newest["method"] == "add" and newest["methods"] == ["add"]
    assert newest["deliveries"] == 3 and "max_deliveries 3" in newest["reason"]
    assert newest["reply_to"] == "test:reply" and 0 <= newest["age_s"] < 60
    first_page = server.http.get("/api/deadletters", params={"limit": 1}).json()
    assert [item["entry_id"] for item in first_page["deadletters"]] == [newest["entry_id"]]
    assert first_page["next_before"] == newest["entry_id"]
    second_page = server.http.get(
        "/api/deadletters", params={"limit": 1, "before": first_page["next_before"]}
    ).json()
    assert [item["entry_id"] for item in second_page["deadletters"]] == [older]


def test_replay_puts_the_request_back_and_the_caller_gets_its_answer(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    entry_id = dead_letter(raw)
    server = bus_server()
    replayed = server.http.post(f"/api/deadletters/{entry_id}/replay")
    assert replayed.status_code == 200
    assert replayed.json()["entry_id"] == entry_id and replayed.json()["deadline_ms"] is None
    assert receive(raw) == {"jsonrpc": "2.0", "result": 3, "id": "late"}
    assert raw.xlen(DEAD) == 0 and raw.get(REPLAYS) == b"1"
    page = server.http.get("/api/deadletters").json()
    assert page["deadletters"] == [] and page["replayed_total"] == 1
    metrics = server.http.get("/metrics").text
    assert "sbusr_bus_dead_letters_replayed_total 1.0" in metrics
    again = server.http.post(f"/api/deadletters/{entry_id}/replay")
    assert again.status_code == 404 and again.json()["error"]["code"] == 404


def test_replay_with_timeout_ms_sets_a_fresh_deadline_and_records_the_replay(
    redis_url: str, raw: redis.Redis
) -> None:
    entry_id = dead_letter(raw)  # no server: the new entry stays on the stream to be read here
    before_ms = int(time.time() * 1000)
    done = run_deadletters(redis_url, "replay", entry_id, "--timeout-ms", "5000")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert before_ms + 5000 <= answer["deadline_ms"] <= int(time.time() * 1000) + 5000
    entries: Any = raw.xrange(STREAM)
    [(new_id, fields)] = entries
    assert new_id.decode() == answer["replayed_as"]
    assert fields[b"replayed_from"].decode() == entry_id
    assert fields[b"deadline_ms"] == str(answer["deadline_ms"]).encode()
    assert fields[b"reply_to"] == b"test:reply" and b"reason" not in fields


def test_replay_body_is_checked(bus_server: Callable[..., ServerProcess], raw: redis.Redis) -> None:
    entry_id = dead_letter(raw)
    server = bus_server()
    refused = server.http.post(f"/api/deadletters/{entry_id}/replay", json={"timeout_ms": -1})
    assert refused.status_code == 400 and refused.json()["error"]["details"]
    assert raw.xlen(DEAD) == 1


def test_drop_removes_one_dead_letter(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    kept, dropped = dead_letter(raw), dead_letter(raw)
    server = bus_server()
    answer = server.http.delete(f"/api/deadletters/{dropped}")
    assert answer.json() == {"entry_id": dropped, "dropped": True}
    assert dead_ids(raw) == [kept]
    assert server.http.delete(f"/api/deadletters/{dropped}").status_code == 404
    assert server.http.get(f"/api/deadletters/{dropped}").status_code == 404
    assert server.http.get(f"/api/deadletters/{kept}").json()["entry_id"] == kept
    assert server.http.get("/api/deadletters/not-an-id").status_code == 404
    assert server.http.get("/api/deadletters", params={"limit": 0}).status_code == 400


def test_the_routes_answer_503_when_the_bus_is_off(start_server: StartServer) -> None:
    server = start_server()
    answer = server.http.get("/api/deadletters")
    assert answer.status_code == 503 and "SBUSR_REDIS_URL" in answer.json()["error"]["message"]
    assert server.http.delete("/api/deadletters/1-0").status_code == 503


def test_retention_keeps_at_most_max_entries(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    written = [dead_letter(raw) for _ in range(5)]
    bus_server(env={"SBUSR_DEADLETTER_MAX_ENTRIES": "3", "SBUSR_CLAIM_IDLE_MS": "200"})
    wait_for(lambda: raw.xlen(DEAD) == 3, message="the dead letters to be trimmed")
    assert dead_ids(raw) == written[2:]


def test_retention_drops_dead_letters_over_max_age(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    raw.xadd(DEAD, {"reason": "old", "data": "{}"}, id="1000-0")  # dead-lettered in 1970
    fresh = [dead_letter(raw) for _ in range(2)]
    bus_server(env={"SBUSR_DEADLETTER_MAX_AGE_S": "3600", "SBUSR_CLAIM_IDLE_MS": "200"})
    wait_for(lambda: raw.xlen(DEAD) == 2, message="the old dead letter to be trimmed")
    assert dead_ids(raw) == fresh


def run_deadletters(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROJECT_DIR / "run.py"), "deadletters", "--url", redis_url, *args],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_command_line_lists_shows_and_drops(redis_url: str, raw: redis.Redis) -> None:
    entry_id = dead_letter(raw)
    listed = run_deadletters(redis_url, "list")
    assert listed.returncode == 0, listed.stderr
    assert [item["entry_id"] for item in json.loads(listed.stdout)["deadletters"]] == [entry_id]
    shown = run_deadletters(redis_url, "show", entry_id)
    assert json.loads(shown.stdout)["method"] == "add"
    dropped = run_deadletters(redis_url, "drop", entry_id)
    assert json.loads(dropped.stdout) == {"entry_id": entry_id, "dropped": True}
    missing = run_deadletters(redis_url, "drop", entry_id)
    assert missing.returncode == 1 and f"no dead letter {entry_id}" in missing.stderr
    assert run_deadletters(redis_url, "list", "--limit", "0").returncode == 2
