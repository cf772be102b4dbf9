"""Tracing end to end: a real server (SBUSR_TRACING=1) exports to an OTLP receiver on loopback.

The spans of an HTTP request and of a bus entry continue the caller's ``traceparent``; the
call's queue wait and its run in a worker are their children; a ``kit.http`` request made by
the method carries the call span's ``traceparent`` to the service it calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.kit.conftest import ScriptedServer, scripted_server
from tests.otlp_receiver import KIND_CONSUMER, KIND_SERVER, OtlpReceiver, ReceivedSpan
from tests.support import ServerProcess

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"

#: a method that calls a service with kit.http and answers the headers the service saw
FETCH = """
import logging

from kit import requests


def headers(url):
    logging.getLogger(__name__).info("fetching %s", url)
    return requests.get(url).json()
"""


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def echo_service() -> Iterator[ScriptedServer]:
    """A local HTTP server whose ``/echo`` answers the request headers as JSON."""
    with scripted_server() as service:
        yield service


def named(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.name == name]


def test_http_queue_and_worker_spans_carry_the_incoming_trace_id(
    start_server: Callable[..., ServerProcess],
    methods_dir: Path,
    receiver: OtlpReceiver,
    echo_service: ScriptedServer,
) -> None:
    (methods_dir / "trace_fetch.py").write_text(FETCH)
    server = start_server(env={**receiver.environment(), "SBUSR_LOG_FORMAT": "json"})
    url = echo_service.url("/echo")
    request = {"jsonrpc": "2.0", "method": "trace_fetch.headers", "params": [url], "id": 1}
    response = server.post(request, headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200, response.text
    seen = {name.lower(): value for name, value in response.json()["result"].items()}

    def complete(spans: list[ReceivedSpan]) -> bool:
        names = {span.name for span in spans}
        return {"POST /rpc", "sbusr.queue_wait", "trace_fetch.headers"} <= names

    spans = receiver.wait_for_spans(complete)
    (http,) = named(spans, "POST /rpc")
    (queue_wait,) = named(spans, "sbusr.queue_wait")
    (call,) = named(spans, "trace_fetch.headers")
    assert http.kind == KIND_SERVER
    assert (http.trace_id, http.parent_span_id) == (TRACE_ID, CALLER_SPAN_ID)
    for span in (queue_wait, call):
        assert (span.trace_id, span.parent_span_id) == (TRACE_ID, http.span_id)
    worker_pids = {worker["pid"] for worker in server.status()["workers"]}
    assert call.attributes["rpc.system"] == "jsonrpc"
    assert call.attributes["rpc.method"] == "trace_fetch.headers"
    assert call.attributes["sbusr.outcome"] == "result"
    assert call.attributes["sbusr.worker.pid"] in worker_pids
    assert call.attributes["sbusr.pool.generation"] == 1
    # the service the method called got the call span's trace context, the method's log too
    call_traceparent = f"00-{TRACE_ID}-{call.span_id}-01"
    assert seen["traceparent"] == call_traceparent
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    (fetching,) = [line for line in lines if line["message"].startswith("fetching")]
    assert fetching["traceparent"] == call_traceparent


def test_bus_entry_spans_carry_the_entry_traceparent(
    bus_server: Callable[..., ServerProcess], raw: redis.Redis, receiver: OtlpReceiver
) -> None:
    bus_server(env=receiver.environment())
    request = {"jsonrpc": "2.0", "method": "echo", "params": ["hi"], "id": 7}
    raw.xadd(
        "sbusr:rpc",
        {"data": json.dumps(request), "reply_to": "test:reply", "traceparent": TRACEPARENT},
    )
    popped = raw.blpop(["test:reply"], timeout=15)
    assert popped is not None and json.loads(popped[1])["result"] == "hi"

    def complete(spans: list[ReceivedSpan]) -> bool:
        return bool(named(spans, "process sbusr:rpc")) and bool(named(spans, "echo"))

    spans = receiver.wait_for_spans(complete)
    (entry,) = named(spans, "process sbusr:rpc")
    (call,) = named(spans, "echo")
    assert entry.kind == KIND_CONSUMER
    assert (entry.trace_id, entry.parent_span_id) == (TRACE_ID, CALLER_SPAN_ID)
    assert entry.attributes["messaging.message.id"]
    assert (call.trace_id, call.parent_span_id) == (TRACE_ID, entry.span_id)


def test_a_scheduled_run_is_a_trace_of_its_own(
    start_server: Callable[..., ServerProcess], receiver: OtlpReceiver
) -> None:
    server = start_server(env=receiver.environment())
    spec = {"id": "traced", "method": "echo", "params": ["tick"], "interval_s": 3600}
    assert server.http.post("/api/jobs", json=spec).status_code == 201
    assert server.http.post("/api/jobs/traced/run").status_code == 202

    def complete(spans: list[ReceivedSpan]) -> bool:
        return bool(named(spans, "job traced")) and bool(named(spans, "echo"))

    spans = receiver.wait_for_spans(complete)
    (job,) = named(spans, "job traced")
    (call,) = named(spans, "echo")
    assert job.parent_span_id == ""
    assert job.attributes["sbusr.job.id"] == "traced"
    assert (call.trace_id, call.parent_span_id) == (job.trace_id, job.span_id)
    assert call.attributes["sbusr.outcome"] == "result"
