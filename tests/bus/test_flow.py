"""POST /api/flow with peers in their own processes (design.md, "REST helpers")."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.support import PROJECT_DIR, ServerProcess, wait_for

PEERS = {"ok": (1, 1), "reject": (2, 1), "slow": (3, 1)}


@pytest.fixture(scope="module")
def flow_server(
    shared_bus: tuple[ServerProcess, str],
) -> Iterator[tuple[ServerProcess, redis.Redis]]:
    """The shared bus server with three live peer processes: 1:1 acks, 2:1 rejects, 3:1 is slow."""
    server, url = shared_bus
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.bus.peer_process", url, str(unit), str(client), mode],
            cwd=PROJECT_DIR,
        )
        for mode, (unit, client) in PEERS.items()
    ]
    raw = redis.Redis.from_url(url)
    wait_for(
        lambda: raw.zcard("sbusr:peers") == len(PEERS),
        timeout_s=20,
        message="the peers' heartbeats",
    )
    yield server, raw
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(10)
    raw.close()


def start(server: ServerProcess, body: object) -> httpx.Response:
    return server.http.post("/api/flow", json=body)


def test_flow_start_acked_is_200(flow_server: tuple[ServerProcess, redis.Redis]) -> None:
    response = start(
        flow_server[0], {"project": "ivr", "flow": "welcome", "params": {"lang": "fr"}, "server": 1}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["peer"] == "1:1" and body["ack"] == 1 and body["msg"] == "started welcome"
    assert isinstance(body["invoke_id"], str) and body["invoke_id"]


def test_peer_stream_expires(flow_server: tuple[ServerProcess, redis.Redis]) -> None:
    assert (
        start(
            flow_server[0], {"project": "ivr", "flow": "f", "server": 1, "process": 1}
        ).status_code
        == 200
    )
    assert flow_server[1].pttl("sbusr:peer:1:1") > 0


def test_no_matching_peer_is_404(flow_server: tuple[ServerProcess, redis.Redis]) -> None:
    assert start(flow_server[0], {"project": "ivr", "flow": "f", "server": 9}).status_code == 404
    response = start(flow_server[0], {"project": "ivr", "flow": "f", "server": 1, "process": 2})
    assert response.status_code == 404 and response.json()["error"]["code"] == 404


def test_stale_peer_is_not_live(flow_server: tuple[ServerProcess, redis.Redis]) -> None:
    flow_server[1].zadd("sbusr:peers", {"5:5": int(time.time() * 1000) - 60000})
    assert start(flow_server[0], {"project": "ivr", "flow": "f", "server": 5}).status_code == 404


def test_peer_answering_another_ack_is_502(flow_server: tuple[ServerProcess, redis.Redis]) -> None:
    response = start(flow_server[0], {"project": "ivr", "flow": "gone", "server": 2})
    assert response.status_code == 502, response.text
    details = response.json()["error"]["details"]
    assert details["ack"] == 7 and details["peer"] == "2:1" and "not deployed" in details["msg"]


def test_no_ack_in_time_is_504_and_the_late_ack_is_dropped(
    flow_server: tuple[ServerProcess, redis.Redis],
) -> None:
    server = flow_server[0]
    response = start(server, {"project": "ivr", "flow": "f", "server": 3})
    assert response.status_code == 504, response.text
    invoke_id = response.json()["error"]["details"]["invoke_id"]
    wait_for(
        lambda: "dropped a flow ack" in server.log() and invoke_id in server.log(),
        timeout_s=10,
        message="the late ack to be dropped",
    )


@pytest.mark.parametrize(
    "body",
    [
        {"flow": "f"},
        {"project": "p", "flow": "f", "server": "one"},
        {"project": "p", "flow": "f", "extra": 1},
        [1, 2],
    ],
)
def test_bad_body_is_400_listing_the_errors(
    flow_server: tuple[ServerProcess, redis.Redis], body: object
) -> None:
    response = start(flow_server[0], body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (
        error["code"] == 400 and error["details"] and all("message" in d for d in error["details"])
    )


def test_body_not_json_is_400(flow_server: tuple[ServerProcess, redis.Redis]) -> None:
    response = flow_server[0].http.post("/api/flow", content=b"{nope")
    assert response.status_code == 400


def test_bus_off_is_503(server: ServerProcess) -> None:
    response = server.http.post("/api/flow", json={"project": "p", "flow": "f"})
    assert response.status_code == 503 and response.json()["error"]["code"] == 503


def test_a_peer_made_of_raw_redis_commands_receives_a_flow_start(
    flow_server: tuple[ServerProcess, redis.Redis],
) -> None:
    """The peer of docs/protocol.md ("Peers and flow start"), with nothing but Redis commands."""
    import concurrent.futures
    import json

    server, raw = flow_server
    unit, client = 9, 4
    member, stream = f"{unit}:{client}", f"sbusr:peer:{unit}:{client}"
    raw.zadd("sbusr:peers", {member: int(time.time() * 1000)})
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as executor:
            pending = executor.submit(
                start,
                server,
                {"project": "ivr", "flow": "welcome", "params": {"lang": "fr"}, "server": unit},
            )
            read = raw.xread({stream: "0-0"}, block=10000)
            assert isinstance(read, list) and read, "no flow.start on the peer's stream"
            fields = read[0][1][0][1]
            assert fields[b"type"] == b"flow.start"
            data = json.loads(fields[b"data"])
            assert (data["project"], data["flow"], data["params"]) == (
                "ivr",
                "welcome",
                {"lang": "fr"},
            )
            raw.rpush(
                fields[b"reply_to"],
                json.dumps({"invoke_id": data["invoke_id"], "ack": 1, "msg": "started by hand"}),
            )
            raw.pexpire(fields[b"reply_to"], 10000)
            response = pending.result(timeout=20)
        assert response.status_code == 200
        assert response.json() == {
            "invoke_id": data["invoke_id"],
            "peer": member,
            "ack": 1,
            "msg": "started by hand",
        }
    finally:
        raw.zrem("sbusr:peers", member)


@pytest.mark.parametrize(
    "body",
    [
        '{"project": "ivr\\udc80", "flow": "f", "server": 1}',
        '{"project": "ivr", "flow": "f", "params": {"\\ud800": 1}, "server": 1}',
    ],
)
def test_a_lone_surrogate_in_the_body_is_400(
    flow_server: tuple[ServerProcess, redis.Redis], body: str
) -> None:
    """It parses, but cannot go on the bus: a JSON 400, not a 500."""
    response = flow_server[0].http.post(
        "/api/flow", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert "lone surrogate" in response.json()["error"]["details"][0]["message"]
