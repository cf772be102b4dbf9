"""JSON-RPC over the bus, driven with raw Redis commands exactly as docs/protocol.md says."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import redis
from redis.typing import EncodableT, FieldT

from tests.support import ServerProcess, wait_for

STREAM, GROUP, DEAD = "sbusr:rpc", "sbusr", "sbusr:rpc:dead"


def send(raw: redis.Redis, payload: Any, reply_to: str | None = "test:reply") -> str:
    """XADD one request entry; returns its id."""
    fields: dict[FieldT, EncodableT] = {
        "data": payload if isinstance(payload, str) else json.dumps(payload)
    }
    if reply_to is not None:
        fields["reply_to"] = reply_to
    entry_id = raw.xadd(STREAM, fields)
    assert isinstance(entry_id, bytes)
    return entry_id.decode()


def receive(raw: redis.Redis, key: str = "test:reply", timeout_s: float = 15) -> Any:
    """BLPOP one reply and decode it."""
    popped = raw.blpop([key], timeout=timeout_s)
    assert popped is not None, f"no reply on {key} within {timeout_s} s"
    return json.loads(popped[1])


def test_raw_xadd_then_blpop_round_trip(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    bus_server()
    send(raw, {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": "a-1"})
    assert receive(raw) == {"jsonrpc": "2.0", "result": 3, "id": "a-1"}


def test_reply_is_acked(bus_server: Callable[..., ServerProcess], raw: redis.Redis) -> None:
    bus_server()
    send(raw, {"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": 1})
    receive(raw)
    wait_for(lambda: raw.xpending(STREAM, GROUP)["pending"] == 0, message="the entry to be acked")


def test_reply_list_expires_after_notify_ttl(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    bus_server(env={"SBUSR_NOTIFY_TTL_MS": "400"})
    send(
        raw, {"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": 1}, reply_to="test:unread"
    )
    wait_for(lambda: raw.exists("test:unread"), message="the reply")
    assert 0 < raw.pttl("test:unread") <= 400
    wait_for(lambda: not raw.exists("test:unread"), timeout_s=5, message="the reply list to expire")


def test_notification_gets_no_reply(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    server = bus_server()
    send(raw, {"jsonrpc": "2.0", "method": "warnlog", "params": ["note-4711"]})
    wait_for(lambda: "note-4711" in server.log(), message="the notification to run")
    wait_for(lambda: raw.xpending(STREAM, GROUP)["pending"] == 0, message="the entry to be acked")
    assert not raw.exists("test:reply")


def test_batch_answers_each_request(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    bus_server()
    send(
        raw,
        [
            {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 1},
            {"jsonrpc": "2.0", "method": "echo", "params": ["only notified"]},
            {"jsonrpc": "2.0", "method": "no.such", "id": 2},
            {"foo": "boo"},
        ],
    )
    reply = receive(raw)
    assert sorted(reply, key=lambda r: json.dumps(r["id"])) == [
        {"jsonrpc": "2.0", "result": 3, "id": 1},
        {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": 2},
        {
            "jsonrpc": "2.0",
            "error": {
                "code": -32600,
                "message": "Invalid Request",
                "data": {"message": 'jsonrpc must be exactly "2.0"'},
            },
            "id": None,
        },
    ]


def test_payload_not_json_is_parse_error(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    bus_server()
    send(raw, '{"jsonrpc": "2.0", "method"')
    reply = receive(raw)
    assert reply["error"]["code"] == -32700 and reply["id"] is None


def test_entry_without_data_is_parse_error(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    bus_server()
    raw.xadd(STREAM, {"reply_to": "test:reply"})
    assert receive(raw)["error"]["code"] == -32700


def test_reads_no_more_than_the_pool_holds_and_never_answers_busy(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    bus_server(env={"SBUSR_POOL_PROCESSES": "1", "SBUSR_QUEUE_MAXSIZE": "2"})
    # the consumer creates its group as it starts reading, maybe after HTTP answers
    wait_for(lambda: raw.exists(STREAM) and raw.xinfo_groups(STREAM), message="the group")
    for number in range(12):
        send(raw, {"jsonrpc": "2.0", "method": "sleep", "params": [0.05], "id": number})
    replies, most_pending = [], 0
    for _ in range(12):
        most_pending = max(most_pending, raw.xpending(STREAM, GROUP)["pending"])
        replies.append(receive(raw))
    assert sorted(reply["id"] for reply in replies) == list(range(12))
    assert all(reply.get("result") == 0.05 for reply in replies), replies
    assert most_pending <= 3, "read more than the pool holds (queue 2 + 1 worker)"


def test_stream_is_trimmed_below_the_oldest_pending_entry(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    bus_server(env={"SBUSR_CLAIM_IDLE_MS": "400"})
    pipe = raw.pipeline()
    for number in range(300):
        pipe.xadd(
            STREAM, {"data": json.dumps({"jsonrpc": "2.0", "method": "echo", "params": [number]})}
        )
    pipe.execute()
    wait_for(lambda: raw.xlen(STREAM) < 300, timeout_s=10, message="the stream to be trimmed")
    assert raw.xpending(STREAM, GROUP)["pending"] == 0


def test_entry_delivered_too_often_is_dead_lettered(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    raw.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    entry_id = send(raw, {"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": 1})
    raw.xreadgroup(GROUP, "ghost", {STREAM: ">"})
    raw.xclaim(STREAM, GROUP, "ghost", 0, [entry_id], retrycount=3)
    bus_server(env={"SBUSR_CLAIM_IDLE_MS": "200", "SBUSR_MAX_DELIVERIES": "3"})
    dead = wait_for(lambda: raw.xrange(DEAD), message="the dead letter")
    fields = dead[0][1]
    assert fields[b"entry_id"].decode() == entry_id
    assert fields[b"deliveries"] == b"3" and b"max_deliveries" in fields[b"reason"]
    assert fields[b"reply_to"] == b"test:reply" and json.loads(fields[b"data"])["method"] == "echo"
    assert raw.xpending(STREAM, GROUP)["pending"] == 0
    assert not raw.exists("test:reply")


def test_reclaimed_entry_already_answered_is_not_run_again(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    raw.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    entry_id = send(
        raw, {"jsonrpc": "2.0", "method": "warnlog", "params": ["ran-twice-0815"], "id": 1}
    )
    raw.xreadgroup(GROUP, "ghost", {STREAM: ">"})
    raw.set("sbusr:done:" + entry_id, 1, px=60000)  # the ghost answered, then died before its ack
    server = bus_server(env={"SBUSR_CLAIM_IDLE_MS": "200"})
    wait_for(lambda: raw.xpending(STREAM, GROUP)["pending"] == 0, message="the entry to be acked")
    assert "ran-twice-0815" not in server.log()
    assert not raw.exists("test:reply")


def test_bus_only_server_without_http(
    start_server: Callable[..., ServerProcess], redis_url: str, raw: redis.Redis
) -> None:
    server = start_server(env={"SBUSR_REDIS_URL": redis_url}, args=["-W"], wait=False)
    send(raw, {"jsonrpc": "2.0", "method": "add", "params": [2, 2], "id": 1})
    assert receive(raw, timeout_s=30) == {"jsonrpc": "2.0", "result": 4, "id": 1}
    assert "serving http" not in server.log()


def test_trimming_keeps_what_another_group_has_not_read(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    raw.xgroup_create(STREAM, "audit", id="0", mkstream=True)
    pipe = raw.pipeline()
    for number in range(300):
        pipe.xadd(
            STREAM, {"data": json.dumps({"jsonrpc": "2.0", "method": "echo", "params": [number]})}
        )
    ids = [entry_id.decode() for entry_id in pipe.execute()]
    raw.xreadgroup("audit", "auditor", {STREAM: ">"}, count=150)  # read, never acked: pending
    bus_server(env={"SBUSR_CLAIM_IDLE_MS": "400"})

    def answered_all() -> bool:
        ours = [g for g in raw.xinfo_groups(STREAM) if g["name"] == GROUP.encode()]
        return bool(ours) and ours[0]["pending"] == 0 and ours[0]["lag"] == 0

    wait_for(answered_all, timeout_s=20, message="the server to answer everything")
    raw.xack(STREAM, "audit", *ids[:100])  # the audit group is done with the first 100
    wait_for(lambda: raw.xlen(STREAM) < 300, timeout_s=10, message="the stream to be trimmed")
    assert raw.xrange(STREAM, ids[100], ids[100]), "an entry pending in another group was trimmed"
    assert raw.xlen(STREAM) >= 200


def test_a_reply_list_redis_refuses_dead_letters_only_its_own_entry(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    bus_server()
    raw.set("test:not-a-list", "text", px=5000)  # a reply list's expiry: not foreign data
    pipe = raw.pipeline(transaction=True)  # one read: the answers share a REPLY script call
    pipe.xadd(
        STREAM,
        {
            "data": json.dumps({"jsonrpc": "2.0", "method": "echo", "params": ["bad"], "id": 0}),
            "reply_to": "test:not-a-list",
        },
    )
    for number in range(1, 4):
        pipe.xadd(
            STREAM,
            {
                "data": json.dumps(
                    {"jsonrpc": "2.0", "method": "echo", "params": [number], "id": number}
                ),
                "reply_to": f"test:reply-{number}",
            },
        )
    bad_id = pipe.execute()[0].decode()
    for number in range(1, 4):
        assert receive(raw, f"test:reply-{number}", timeout_s=5)["result"] == number
    wait_for(lambda: raw.xlen(DEAD) == 1, message="the refused entry in the dead letters")
    dead_entries = raw.xrange(DEAD)
    assert dead_entries and dead_entries[0][1] is not None
    dead = dead_entries[0][1]
    assert dead[b"entry_id"] == bad_id.encode()
    reason = dead[b"reason"]
    assert isinstance(reason, bytes) and b"WRONGTYPE" in reason
    wait_for(lambda: raw.xpending(STREAM, GROUP)["pending"] == 0, message="every entry to be acked")


def test_bus_metrics_count_entries_read_and_dead_lettered(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis
) -> None:
    server = bus_server()
    raw.set("test:not-a-list", "text", px=5000)  # a reply list's expiry: not foreign data
    send(raw, {"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": 1})
    receive(raw)
    send(
        raw,
        {"jsonrpc": "2.0", "method": "echo", "params": ["y"], "id": 2},
        reply_to="test:not-a-list",
    )
    wait_for(lambda: raw.xlen(DEAD) == 1, message="the dead letter")

    def metric(name: str) -> float:
        for line in server.http.get("/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return -1.0

    assert metric("sbusr_bus_entries_read_total") == 2
    assert metric("sbusr_bus_entries_dead_lettered_total") == 1
    wait_for(lambda: metric("sbusr_bus_pending_entries") == 0, message="the pending gauge")
